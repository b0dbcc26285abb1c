package authentication

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTokens(t *testing.T) {
	tokens, err := ParseTokens(strings.NewReader("t1,jane,1001\n\nt2,bob,1002,\"devs,testers\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	u, ok, err := tokens.AuthenticateToken(context.Background(), "t2")
	if err != nil || !ok || u.Name != "bob" || u.UID != "1002" || len(u.Groups) != 2 || u.Groups[1] != "testers" {
		t.Fatalf("t2 = %+v %v %v", u, ok, err)
	}
	if _, ok, _ := tokens.AuthenticateToken(context.Background(), "t3"); ok {
		t.Error("unknown token accepted")
	}
	if _, err := ParseTokens(strings.NewReader("t1,jane\n")); err == nil {
		t.Error("a line without uid was accepted")
	}
}

func TestServiceAccountTokenVerification(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const issuer = "https://kubernetes.default.svc"
	signer, err := NewTokenIssuer(issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := NewTokenIssuer(issuer, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	request := func(mutate func(*TokenRequest)) TokenRequest {
		r := TokenRequest{Namespace: "ns", ServiceAccountName: "sa", ServiceAccountUID: "uid-1", Audiences: []string{issuer},
			IssuedAt: now, Expiry: now.Add(time.Hour), ID: "jti-1", Pod: &BoundObject{Name: "p", UID: "pod-uid"}}
		if mutate != nil {
			mutate(&r)
		}
		return r
	}
	objects := fakeObjects{"serviceaccounts/ns/sa": "uid-1", "pods/ns/p": "pod-uid"}
	verifier := &TokenVerifier{Issuers: []string{issuer}, Keys: []crypto.PublicKey{key.Public()}, Audiences: []string{issuer}, Objects: objects}

	valid, err := signer.Issue(request(nil))
	if err != nil {
		t.Fatal(err)
	}
	u, ok, err := verifier.AuthenticateToken(context.Background(), valid)
	if err != nil || !ok {
		t.Fatalf("valid token: %v %v", ok, err)
	}
	if u.Name != "system:serviceaccount:ns:sa" || u.UID != "uid-1" || u.Extra[ExtraPodName][0] != "p" || u.Extra[ExtraCredentialID][0] != "JTI=jti-1" {
		t.Errorf("user = %+v", u)
	}

	mustIssue := func(i *TokenIssuer, r TokenRequest) string {
		s, err := i.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rejected := map[string]string{
		"expired":             mustIssue(signer, request(func(r *TokenRequest) { r.IssuedAt, r.Expiry = now.Add(-2*time.Hour), now.Add(-time.Hour) })),
		"wrong audience":      mustIssue(signer, request(func(r *TokenRequest) { r.Audiences = []string{"vault"} })),
		"signed by other key": mustIssue(impostor, request(nil)),
		"tampered":            valid[:len(valid)-4] + "AAAA",
		"deleted pod":         mustIssue(signer, request(func(r *TokenRequest) { r.Pod = &BoundObject{Name: "gone", UID: "x"} })),
		"recreated account":   mustIssue(signer, request(func(r *TokenRequest) { r.ServiceAccountUID = "uid-0" })),
	}
	for name, token := range rejected {
		_, ok, err := verifier.AuthenticateToken(context.Background(), token)
		if ok || !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s token: ok=%v err=%v, want ErrInvalidCredentials", name, ok, err)
		}
	}
	otherIssuer, err := NewTokenIssuer("https://elsewhere", key)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := verifier.AuthenticateToken(context.Background(), mustIssue(otherIssuer, request(nil))); ok || err != nil {
		t.Errorf("token of another issuer: ok=%v err=%v, want not recognised", ok, err)
	}
}

type fakeObjects map[string]string

func (f fakeObjects) UID(_ context.Context, resource, namespace, name string) (string, bool, error) {
	uid, ok := f[resource+"/"+namespace+"/"+name]
	return uid, ok, nil
}
