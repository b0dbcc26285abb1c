// Package keyring turns a pod's imagePullSecrets into registry
// credentials for an image, matching registry locations as kubelet's
// Docker keyring does: a location may name a host (with a port, and with
// "*" globs per host name label) and a path prefix; more specific
// locations come first, and Docker Hub's legacy index location serves
// images of the default registry.
package keyring

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Credential is a user name and password for a registry.
type Credential struct {
	Username string
	Password string
}

// Keyring holds the credentials of a pod's pull secrets, each secret's
// in its own ring, consulted in the order the pod lists them.
type Keyring struct {
	rings []ring
}

// ring is the credentials of one secret by location (host[:port][/path],
// without scheme); index lists the locations most specific first.
type ring struct {
	index []string
	creds map[string][]Credential
}

// dockerConfigEntry is one location's entry in a Docker config: either a
// user name and password, or both in "auth" as base64("user:password").
type dockerConfigEntry struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Email    string `json:"email,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// dockerConfigJSON is the content of a kubernetes.io/dockerconfigjson
// secret (~/.docker/config.json); a kubernetes.io/dockercfg secret holds
// the map of auths alone (~/.dockercfg).
type dockerConfigJSON struct {
	Auths map[string]dockerConfigEntry `json:"auths"`
}

// FromSecrets reads the pull secrets of the kubernetes.io/dockerconfigjson
// and kubernetes.io/dockercfg types; secrets of other types, or without
// their key, are skipped, as kubelet skips them.
func FromSecrets(secrets []corev1.Secret) (*Keyring, error) {
	k := &Keyring{}
	for _, s := range secrets {
		var auths map[string]dockerConfigEntry
		switch {
		case s.Type == corev1.SecretTypeDockerConfigJson && len(s.Data[corev1.DockerConfigJsonKey]) > 0:
			var config dockerConfigJSON
			if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &config); err != nil {
				return nil, fmt.Errorf("reading %s of pull secret %s: %w", corev1.DockerConfigJsonKey, s.Name, err)
			}
			auths = config.Auths
		case s.Type == corev1.SecretTypeDockercfg && len(s.Data[corev1.DockerConfigKey]) > 0:
			if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &auths); err != nil {
				return nil, fmt.Errorf("reading %s of pull secret %s: %w", corev1.DockerConfigKey, s.Name, err)
			}
		default:
			continue
		}
		r, err := newRing(auths)
		if err != nil {
			return nil, fmt.Errorf("pull secret %s: %w", s.Name, err)
		}
		k.rings = append(k.rings, r)
	}
	return k, nil
}

func newRing(auths map[string]dockerConfigEntry) (ring, error) {
	r := ring{creds: map[string][]Credential{}}
	for location, entry := range auths {
		cred := Credential{Username: entry.Username, Password: entry.Password}
		if entry.Auth != "" {
			var err error
			if cred, err = decodeAuth(entry.Auth); err != nil {
				return ring{}, fmt.Errorf("auth of %s: %w", location, err)
			}
		}
		key, err := locationKey(location)
		if err != nil {
			// kubelet skips locations it cannot parse.
			continue
		}
		if _, seen := r.creds[key]; !seen {
			r.index = append(r.index, key)
		}
		r.creds[key] = append(r.creds[key], cred)
	}
	// Reverse order puts longer paths of one host before the host, so
	// that the most specific location matches first.
	slices.Sort(r.index)
	slices.Reverse(r.index)
	return r, nil
}

func decodeAuth(auth string) (Credential, error) {
	decoded, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return Credential{}, err
	}
	user, password, ok := strings.Cut(string(decoded), ":")
	if !ok {
		return Credential{}, errors.New("not of the form user:password")
	}
	return Credential{Username: user, Password: password}, nil
}

// locationKey is a config location (which may have a scheme and Docker's
// /v1/ or /v2/ API prefix) as host[:port][/path].
func locationKey(location string) (string, error) {
	value := location
	if !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") {
		value = "https://" + value
	}
	parsed, err := url.Parse(value)
	if err != nil {
		return "", err
	}
	path := parsed.Path
	if strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/v2/") {
		path = path[3:]
	}
	if path == "" || path == "/" {
		return parsed.Host, nil
	}
	return parsed.Host + path, nil
}

// defaultRegistryKey is where Docker's own tools keep Docker Hub's
// credentials ("https://index.docker.io/v1/").
const defaultRegistryKey = "index.docker.io"

// Lookup returns the credentials that may pull repository (a normalized
// image name without tag, such as docker.io/library/busybox or
// 127.0.0.1:5000/echo), in the order to try them.
func (k *Keyring) Lookup(repository string) []Credential {
	var found []Credential
	for _, r := range k.rings {
		found = append(found, r.lookup(repository)...)
	}
	return found
}

func (r ring) lookup(repository string) []Credential {
	var found []Credential
	for _, key := range r.index {
		if locationMatches(key, repository) {
			found = append(found, r.creds[key]...)
		}
	}
	if len(found) == 0 && isDefaultRegistry(repository) {
		found = r.creds[defaultRegistryKey]
	}
	return found
}

// locationMatches reports whether the repository lies under the location:
// the same port, the same number of host name labels each matching its
// (glob) label, and the location's path a prefix of the repository's.
func locationMatches(location, repository string) bool {
	globHost, globPath := splitRepository(location)
	host, path := splitRepository(repository)
	globLabels, globPort := splitHost(globHost)
	labels, port := splitHost(host)
	if globPort != port || len(globLabels) != len(labels) || !strings.HasPrefix(path, globPath) {
		return false
	}
	for i, glob := range globLabels {
		if ok, err := filepath.Match(glob, labels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitRepository(repository string) (host, path string) {
	host, path, _ = strings.Cut(repository, "/")
	if path != "" {
		path = "/" + path
	}
	return host, path
}

func splitHost(hostPort string) (labels []string, port string) {
	host := hostPort
	if h, p, err := net.SplitHostPort(hostPort); err == nil {
		host, port = h, p
	}
	return strings.Split(host, "."), port
}

// isDefaultRegistry reports whether repository is pulled from Docker Hub:
// no host part, or docker.io / index.docker.io, or a first part that is no
// host name (no dot or colon).
func isDefaultRegistry(repository string) bool {
	first, _, found := strings.Cut(repository, "/")
	if first == "" {
		return false
	}
	if !found {
		return true
	}
	if first == "docker.io" || first == defaultRegistryKey {
		return true
	}
	return !strings.ContainsAny(first, ".:")
}
