package server

import (
	"net/http/httptest"
	"reflect"
	"testing"
)

func TestParseExecOptions(t *testing.T) {
	cases := []struct {
		query   string
		want    execOptions
		wantErr string
	}{
		{query: "command=ls&command=-l&stdout=true", want: execOptions{command: []string{"ls", "-l"}, stdout: true}},
		{query: "command=sh&stdin=true&stdout=true&stderr=true&tty=true", want: execOptions{command: []string{"sh"}, stdin: true, stdout: true, tty: true}},
		{query: "stdout=true", wantErr: "you must specify a command"},
		{query: "command=ls", wantErr: "you must specify at least 1 of stdin, stdout, stderr"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			got, err := parseExecOptions(httptest.NewRequest("GET", "/exec/ns/pod/c?"+tc.query, nil))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
