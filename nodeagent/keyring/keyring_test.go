package keyring

import (
	"encoding/base64"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func dockerConfigJSONSecret(name, config string) corev1.Secret {
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(config)},
	}
}

func TestLookup(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("encoded:pa:ss"))
	secrets := []corev1.Secret{
		dockerConfigJSONSecret("json", `{"auths": {
			"registry.example.com": {"username": "host", "password": "h"},
			"registry.example.com/team": {"username": "team", "password": "t"},
			"https://127.0.0.1:5000/v2/": {"auth": "`+auth+`"},
			"*.corp.example": {"username": "glob", "password": "g"},
			"https://index.docker.io/v1/": {"username": "hub", "password": "d"}
		}}`),
		{
			ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
			Type:       corev1.SecretTypeDockercfg,
			Data:       map[string][]byte{corev1.DockerConfigKey: []byte(`{"registry.example.com": {"username": "legacy", "password": "l"}}`)},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "opaque"},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths": {"registry.example.com": {"username": "opaque"}}}`)},
		},
	}
	k, err := FromSecrets(secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repository string
		want       []string
	}{
		{"registry.example.com/app", []string{"host", "legacy"}},
		{"registry.example.com/team/app", []string{"team", "host", "legacy"}},
		{"registry.example.com:443/app", nil},
		{"127.0.0.1:5000/tower.dev/test/echo", []string{"encoded"}},
		{"127.0.0.1:5001/echo", nil},
		{"eu.corp.example/app", []string{"glob"}},
		{"a.eu.corp.example/app", nil},
		{"docker.io/library/busybox", []string{"hub"}},
		{"example/app", []string{"hub"}},
		{"quay.io/app", nil},
	} {
		var users []string
		for _, c := range k.Lookup(tc.repository) {
			users = append(users, c.Username)
		}
		if !reflect.DeepEqual(users, tc.want) {
			t.Errorf("Lookup(%q) users = %v, want %v", tc.repository, users, tc.want)
		}
	}
	if got := k.Lookup("127.0.0.1:5000/echo"); len(got) != 1 || got[0].Password != "pa:ss" {
		t.Errorf("auth field decoded to %+v, want user encoded with password pa:ss", got)
	}
}

func TestFromSecretsRejectsMalformed(t *testing.T) {
	for name, config := range map[string]string{
		"not JSON":      `{"auths":`,
		"auth not b64":  `{"auths": {"r.example": {"auth": "%%%"}}}`,
		"auth no colon": `{"auths": {"r.example": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("user")) + `"}}}`,
	} {
		if _, err := FromSecrets([]corev1.Secret{dockerConfigJSONSecret("bad", config)}); err == nil {
			t.Errorf("%s: FromSecrets accepted %s", name, config)
		}
	}
}
