package authentication

import (
	"context"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// StaticTokens authenticates the bearer tokens of a --token-auth-file.
type StaticTokens struct {
	users map[string]*User
}

// LoadTokenFile reads upstream's CSV format: token,user,uid[,"group1,group2"].
func LoadTokenFile(path string) (*StaticTokens, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	tokens, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return tokens, nil
}

// ParseTokens reads the token CSV from r.
func ParseTokens(r io.Reader) (*StaticTokens, error) {
	reader := csv.NewReader(r)
	reader.FieldsPerRecord = -1
	reader.TrimLeadingSpace = true
	t := &StaticTokens{users: map[string]*User{}}
	for line := 1; ; line++ {
		record, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(record) == 1 && strings.TrimSpace(record[0]) == "" {
			continue
		}
		if len(record) < 3 {
			return nil, fmt.Errorf("line %d: token, user name and uid are required, got %d columns", line, len(record))
		}
		token := strings.TrimSpace(record[0])
		if token == "" {
			return nil, fmt.Errorf("line %d: empty token", line)
		}
		u := &User{Name: record[1], UID: record[2]}
		if len(record) > 3 {
			for _, g := range strings.Split(record[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		}
		t.users[token] = u
	}
}

// AuthenticateToken implements TokenAuthenticator.
func (t *StaticTokens) AuthenticateToken(_ context.Context, token string) (*User, bool, error) {
	for known, u := range t.users {
		if subtle.ConstantTimeCompare([]byte(known), []byte(token)) == 1 {
			copied := *u
			copied.Groups = append([]string{}, u.Groups...)
			return &copied, true, nil
		}
	}
	return nil, false, nil
}
