package containers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCRILogFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	log, err := openCRILog(StdioConfig{LogPath: path}, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ stream, data string }{
		{streamStdout, "one\ntwo\npart"},
		{streamStderr, "oops\n"},
		{streamStdout, "ial\n"},
	} {
		if err := log.write(w.stream, []byte(w.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "2026-01-02T03:04:05.0000006Z stdout F one\n" +
		"2026-01-02T03:04:05.0000006Z stdout F two\n" +
		"2026-01-02T03:04:05.0000006Z stdout P part\n" +
		"2026-01-02T03:04:05.0000006Z stderr F oops\n" +
		"2026-01-02T03:04:05.0000006Z stdout F ial\n"
	if string(got) != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

func TestCRILogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time {
		clock = clock.Add(time.Millisecond)
		return clock
	}
	// Each entry is 43 bytes: three fit in a file of 150.
	log, err := openCRILog(StdioConfig{LogPath: path, LogMaxSize: 150, LogMaxFiles: 3}, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := log.write(streamStdout, []byte(strings.Repeat(string(rune('a'+i)), 8)+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.close(); err != nil {
		t.Fatal(err)
	}
	rotated, err := RotatedLogs(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 2 {
		t.Fatalf("rotated files %v, want the newest 2 of 3", rotated)
	}
	var contents []string
	for _, f := range append(rotated, path) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 150 {
			t.Errorf("%s holds %d bytes, over the maximum", f, len(data))
		}
		var lines []string
		for line := range strings.Lines(string(data)) {
			fields := strings.Fields(line)
			lines = append(lines, fields[len(fields)-1][:1])
		}
		contents = append(contents, strings.Join(lines, ""))
	}
	// a-c were rotated away with the oldest file.
	if got := strings.Join(contents, "|"); got != "def|ghi|j" {
		t.Errorf("files hold %q, want def|ghi|j", got)
	}
}
