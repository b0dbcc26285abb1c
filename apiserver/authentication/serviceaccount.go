package authentication

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Service-account naming as kube-apiserver derives it.
const (
	ServiceAccountUserPrefix = "system:serviceaccount:"
	GroupServiceAccounts     = "system:serviceaccounts"
	// The user extra keys that describe what a token is bound to.
	ExtraPodName      = "authentication.kubernetes.io/pod-name"
	ExtraPodUID       = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName     = "authentication.kubernetes.io/node-name"
	ExtraNodeUID      = "authentication.kubernetes.io/node-uid"
	ExtraCredentialID = "authentication.kubernetes.io/credential-id"
)

// ServiceAccountUser is the identity of a service account.
func ServiceAccountUser(namespace, name, uid string) *User {
	return &User{
		Name:   ServiceAccountUserPrefix + namespace + ":" + name,
		UID:    uid,
		Groups: []string{GroupServiceAccounts, GroupServiceAccounts + ":" + namespace},
	}
}

// SplitServiceAccountUser returns the namespace and name of a service
// account user name.
func SplitServiceAccountUser(user string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(user, ServiceAccountUserPrefix)
	if !found {
		return "", "", false
	}
	namespace, name, found = strings.Cut(rest, ":")
	return namespace, name, found && namespace != "" && name != "" && !strings.Contains(name, ":")
}

// BoundObject is an object a token is bound to: the token dies with it.
type BoundObject struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// kubernetesClaims is the "kubernetes.io" claim of a bound token.
type kubernetesClaims struct {
	Namespace      string       `json:"namespace"`
	ServiceAccount BoundObject  `json:"serviceaccount"`
	Pod            *BoundObject `json:"pod,omitempty"`
	Secret         *BoundObject `json:"secret,omitempty"`
	Node           *BoundObject `json:"node,omitempty"`
	WarnAfter      *int64       `json:"warnafter,omitempty"`
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Kubernetes *kubernetesClaims `json:"kubernetes.io,omitempty"`
}

// TokenRequest is what a bound service-account token says.
type TokenRequest struct {
	Namespace          string
	ServiceAccountName string
	ServiceAccountUID  string
	Audiences          []string
	IssuedAt           time.Time
	Expiry             time.Time
	// ID is the token's jti; it shows up in the user's credential id.
	ID     string
	Pod    *BoundObject
	Secret *BoundObject
	Node   *BoundObject
}

// TokenIssuer signs service-account tokens.
type TokenIssuer struct {
	Issuer string
	key    crypto.Signer
	method jwt.SigningMethod
	keyID  string
}

// NewTokenIssuer signs with key (RSA or ECDSA) as issuer.
func NewTokenIssuer(issuer string, key crypto.Signer) (*TokenIssuer, error) {
	method, err := signingMethod(key.Public())
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return &TokenIssuer{Issuer: issuer, key: key, method: method, keyID: kid}, nil
}

// Issue signs a token for req.
func (i *TokenIssuer) Issue(req TokenRequest) (string, error) {
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.Issuer,
			Subject:   ServiceAccountUserPrefix + req.Namespace + ":" + req.ServiceAccountName,
			Audience:  req.Audiences,
			ExpiresAt: jwt.NewNumericDate(req.Expiry),
			NotBefore: jwt.NewNumericDate(req.IssuedAt),
			IssuedAt:  jwt.NewNumericDate(req.IssuedAt),
			ID:        req.ID,
		},
		Kubernetes: &kubernetesClaims{
			Namespace:      req.Namespace,
			ServiceAccount: BoundObject{Name: req.ServiceAccountName, UID: req.ServiceAccountUID},
			Pod:            req.Pod,
			Secret:         req.Secret,
			Node:           req.Node,
		},
	}
	token := jwt.NewWithClaims(i.method, claims)
	token.Header["kid"] = i.keyID
	signed, err := token.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("sign service account token: %w", err)
	}
	return signed, nil
}

// BoundObjects answers whether the objects a token names still exist with
// the UIDs it names.
type BoundObjects interface {
	// UID returns the UID of the object, found=false when it is gone.
	UID(ctx context.Context, resource, namespace, name string) (uid string, found bool, err error)
}

// TokenVerifier authenticates service-account JWTs.
type TokenVerifier struct {
	Issuers []string
	Keys    []crypto.PublicKey
	// Audiences the API accepts (--api-audiences, the issuers by default);
	// a token must be meant for one of them.
	Audiences []string
	Objects   BoundObjects
	Now       func() time.Time
}

// AuthenticateToken implements TokenAuthenticator. Tokens that are not
// JWTs from one of the issuers are not its business (ok=false, no error).
func (v *TokenVerifier) AuthenticateToken(ctx context.Context, raw string) (*User, bool, error) {
	user, _, ok, err := v.Verify(ctx, raw, v.Audiences)
	return user, ok, err
}

// Verify checks a token against audiences and returns its user and the
// audiences it was issued for that were asked for.
func (v *TokenVerifier) Verify(ctx context.Context, raw string, audiences []string) (*User, []string, bool, error) {
	unverified, _, err := jwt.NewParser().ParseUnverified(raw, &tokenClaims{})
	if err != nil {
		return nil, nil, false, nil
	}
	issuer, _ := unverified.Claims.GetIssuer()
	if !slices.Contains(v.Issuers, issuer) {
		return nil, nil, false, nil
	}
	claims := &tokenClaims{}
	_, err = jwt.ParseWithClaims(raw, claims, v.keyFor,
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}),
		jwt.WithTimeFunc(v.now), jwt.WithLeeway(time.Minute), jwt.WithExpirationRequired())
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	}
	matched := intersect(claims.Audience, audiences)
	if len(matched) == 0 {
		return nil, nil, false, fmt.Errorf("%w: token audiences %q are not accepted", ErrInvalidCredentials, []string(claims.Audience))
	}
	k := claims.Kubernetes
	if k == nil || k.Namespace == "" || k.ServiceAccount.Name == "" {
		return nil, nil, false, fmt.Errorf("%w: not a bound service account token", ErrInvalidCredentials)
	}
	if err := v.checkBound(ctx, k); err != nil {
		return nil, nil, false, err
	}
	u := ServiceAccountUser(k.Namespace, k.ServiceAccount.Name, k.ServiceAccount.UID)
	u.Extra = map[string][]string{}
	if k.Pod != nil {
		u.Extra[ExtraPodName] = []string{k.Pod.Name}
		u.Extra[ExtraPodUID] = []string{k.Pod.UID}
	}
	if k.Node != nil {
		u.Extra[ExtraNodeName] = []string{k.Node.Name}
		u.Extra[ExtraNodeUID] = []string{k.Node.UID}
	}
	if claims.ID != "" {
		u.Extra[ExtraCredentialID] = []string{"JTI=" + claims.ID}
	}
	return u, matched, true, nil
}

func (v *TokenVerifier) checkBound(ctx context.Context, k *kubernetesClaims) error {
	if v.Objects == nil {
		return nil
	}
	checks := []struct {
		resource, namespace string
		obj                 *BoundObject
	}{
		{"serviceaccounts", k.Namespace, &k.ServiceAccount},
		{"pods", k.Namespace, k.Pod},
		{"secrets", k.Namespace, k.Secret},
		{"nodes", "", k.Node},
	}
	for _, c := range checks {
		if c.obj == nil {
			continue
		}
		uid, found, err := v.Objects.UID(ctx, c.resource, c.namespace, c.obj.Name)
		if err != nil {
			return fmt.Errorf("look up %s %s/%s bound to token: %w", c.resource, c.namespace, c.obj.Name, err)
		}
		if !found {
			return fmt.Errorf("%w: %s %s/%s bound to the token no longer exists", ErrInvalidCredentials, c.resource, c.namespace, c.obj.Name)
		}
		if c.obj.UID != "" && uid != c.obj.UID {
			return fmt.Errorf("%w: %s %s/%s bound to the token was recreated", ErrInvalidCredentials, c.resource, c.namespace, c.obj.Name)
		}
	}
	return nil
}

func (v *TokenVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *TokenVerifier) keyFor(token *jwt.Token) (any, error) {
	kid, _ := token.Header["kid"].(string)
	var candidates []crypto.PublicKey
	for _, k := range v.Keys {
		if id, err := KeyID(k); err == nil && id == kid {
			return k, nil
		}
		candidates = append(candidates, k)
	}
	if len(candidates) == 0 {
		return nil, errors.New("no service account verification keys")
	}
	return jwt.VerificationKeySet{Keys: toVerificationKeys(candidates)}, nil
}

func toVerificationKeys(keys []crypto.PublicKey) []jwt.VerificationKey {
	out := make([]jwt.VerificationKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, k)
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func signingMethod(pub crypto.PublicKey) (jwt.SigningMethod, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, nil
		}
	}
	return nil, fmt.Errorf("unsupported service account key type %T", pub)
}

// KeyID names a public key as kube-apiserver does in the kid header: the
// unpadded base64url SHA-256 of its PKIX encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// LoadSigningKey reads a PEM private key (RSA or ECDSA).
func LoadSigningKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("read service account signing key: %w", err)
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if key, err := parsePrivateKey(block); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("%s holds no RSA or ECDSA private key", path)
}

// LoadPublicKeys reads every public key in a PEM file: public keys,
// certificates and the public halves of private keys.
func LoadPublicKeys(path string) ([]crypto.PublicKey, error) {
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("read service account key: %w", err)
	}
	var keys []crypto.PublicKey
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		switch block.Type {
		case "PUBLIC KEY":
			if k, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
				keys = append(keys, k)
			}
		case "RSA PUBLIC KEY":
			if k, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
				keys = append(keys, k)
			}
		case "CERTIFICATE":
			if c, err := x509.ParseCertificate(block.Bytes); err == nil {
				keys = append(keys, c.PublicKey)
			}
		default:
			if k, err := parsePrivateKey(block); err == nil {
				keys = append(keys, k.Public())
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no public keys", path)
	}
	return keys, nil
}

func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unsupported private key block %q", block.Type)
}

// OpenIDConfiguration is /.well-known/openid-configuration for issuer.
func OpenIDConfiguration(issuer, jwksURI string, keys []crypto.PublicKey) ([]byte, error) {
	algs := map[string]bool{}
	for _, k := range keys {
		if m, err := signingMethod(k); err == nil {
			algs[m.Alg()] = true
		}
	}
	supported := make([]string, 0, len(algs))
	for a := range algs {
		supported = append(supported, a)
	}
	slices.Sort(supported)
	return json.Marshal(map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              jwksURI,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": supported,
	})
}

// JWKS is the JSON Web Key Set of keys.
func JWKS(keys []crypto.PublicKey) ([]byte, error) {
	type jwk struct {
		Use string `json:"use"`
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Crv string `json:"crv,omitempty"`
		Alg string `json:"alg"`
		N   string `json:"n,omitempty"`
		E   string `json:"e,omitempty"`
		X   string `json:"x,omitempty"`
		Y   string `json:"y,omitempty"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	b64 := base64.RawURLEncoding.EncodeToString
	for _, k := range keys {
		kid, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		method, err := signingMethod(k)
		if err != nil {
			return nil, err
		}
		entry := jwk{Use: "sig", Kid: kid, Alg: method.Alg()}
		switch pub := k.(type) {
		case *rsa.PublicKey:
			entry.Kty, entry.N, entry.E = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
		case *ecdsa.PublicKey:
			ecdh, err := pub.ECDH()
			if err != nil {
				return nil, fmt.Errorf("encode EC key: %w", err)
			}
			raw := ecdh.Bytes()[1:]
			entry.Kty, entry.Crv = "EC", pub.Curve.Params().Name
			entry.X, entry.Y = b64(raw[:len(raw)/2]), b64(raw[len(raw)/2:])
		}
		set.Keys = append(set.Keys, entry)
	}
	return json.Marshal(set)
}
