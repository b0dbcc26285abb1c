package containers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// StdioConfig is how a container's standard streams are connected: its
// output goes to a log file in the CRI format, rotated by size, and to
// whoever attaches; its stdin, when it has one, comes from attached
// clients.
type StdioConfig struct {
	// LogPath is the current log file; rotated files sit next to it with
	// a time suffix (RotatedLogs).
	LogPath string
	// Stdin gives the container a stdin; StdinOnce closes it when the
	// first attached client's stdin ends.
	Stdin, StdinOnce bool
	// TTY runs the process on a terminal; its stderr is its stdout.
	TTY bool
	// LogMaxSize rotates the log once it is this large; zero never does.
	LogMaxSize int64
	// LogMaxFiles is how many files (current and rotated) are kept; less
	// than 2 keeps two.
	LogMaxFiles int
}

// Streams in the CRI log format.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// rotatedSuffixFormat names rotated log files; it sorts by time.
const rotatedSuffixFormat = "20060102-150405.000000000"

// RotatedLogs lists the rotated files of the log at path, oldest first.
func RotatedLogs(path string) ([]string, error) {
	matches, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, fmt.Errorf("listing rotated logs of %s: %w", path, err)
	}
	var rotated []string
	for _, m := range matches {
		if _, err := time.Parse(rotatedSuffixFormat, m[len(path)+1:]); err == nil {
			rotated = append(rotated, m)
		}
	}
	slices.Sort(rotated)
	return rotated, nil
}

// criLog writes container output in the CRI log format kubelet reads:
// one entry per line, "<RFC3339Nano time> <stream> <F|P> <content>", F
// for a line that ends there and P for a part of a line whose rest
// follows in later entries.
type criLog struct {
	mu       sync.Mutex
	path     string
	file     *os.File
	size     int64
	maxSize  int64
	maxFiles int
	now      func() time.Time
}

func openCRILog(cfg StdioConfig, now func() time.Time) (*criLog, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("creating log dir: %w", err)
	}
	l := &criLog{path: cfg.LogPath, maxSize: cfg.LogMaxSize, maxFiles: max(cfg.LogMaxFiles, 2), now: now}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *criLog) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("opening container log: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat container log: %w", err)
	}
	l.file, l.size = f, info.Size()
	return nil
}

// write logs p as read from stream: each complete line an F entry, a
// trailing part without its newline a P entry.
func (l *criLog) write(stream string, p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return errors.New("container log is closed")
	}
	prefix := l.now().UTC().Format(time.RFC3339Nano) + " " + stream + " "
	buf := make([]byte, 0, len(p)+len(prefix)+8)
	for len(p) > 0 {
		tag, line := "P ", p
		p = nil
		for i, b := range line {
			if b == '\n' {
				tag, line, p = "F ", line[:i], line[i+1:]
				break
			}
		}
		entry := len(prefix) + len(tag) + len(line) + 1
		// A file holds at most maxSize bytes, unless one entry is larger.
		if l.maxSize > 0 && l.size+int64(len(buf)+entry) > l.maxSize && l.size+int64(len(buf)) > 0 {
			if err := l.flush(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := l.rotate(); err != nil {
				return err
			}
		}
		buf = append(append(append(append(buf, prefix...), tag...), line...), '\n')
	}
	return l.flush(buf)
}

func (l *criLog) flush(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := l.file.Write(buf)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("writing container log: %w", err)
	}
	return nil
}

// rotate renames the current file with a time suffix, drops the oldest
// rotated files beyond maxFiles and starts a new current file.
func (l *criLog) rotate() error {
	if err := l.file.Close(); err != nil {
		return fmt.Errorf("closing container log: %w", err)
	}
	l.file = nil
	rotatedPath := l.path + "." + l.now().UTC().Format(rotatedSuffixFormat)
	if err := os.Rename(l.path, rotatedPath); err != nil {
		return fmt.Errorf("rotating container log: %w", err)
	}
	rotated, err := RotatedLogs(l.path)
	if err != nil {
		return err
	}
	for len(rotated) > l.maxFiles-1 {
		if err := os.Remove(rotated[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing rotated log: %w", err)
		}
		rotated = rotated[1:]
	}
	return l.open()
}

func (l *criLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// containerStdio is the agent's end of one running container's standard
// streams: output is logged and copied to attached clients, attached
// clients feed stdin.
type containerStdio struct {
	cfg   StdioConfig
	log   *criLog
	stdin *io.PipeReader
	// feed writes what the container reads on stdin; nil without stdin.
	feed *io.PipeWriter

	mu       sync.Mutex
	attached map[*attachment]struct{}
	// outputDone is closed when the container's output has ended.
	outputDone chan struct{}
}

// attachment is one attached client's output.
type attachment struct {
	stdout, stderr io.Writer
	failed         chan struct{}
	once           sync.Once
}

func newContainerStdio(cfg StdioConfig) (*containerStdio, error) {
	log, err := openCRILog(cfg, time.Now)
	if err != nil {
		return nil, err
	}
	s := &containerStdio{cfg: cfg, log: log, attached: map[*attachment]struct{}{}, outputDone: make(chan struct{})}
	if cfg.Stdin {
		s.stdin, s.feed = io.Pipe()
	}
	return s, nil
}

// stdinReader is what the runtime copies into the container's stdin; nil
// when it has none.
func (s *containerStdio) stdinReader() io.Reader {
	if s.stdin == nil {
		return nil
	}
	return s.stdin
}

func (s *containerStdio) stdout() io.Writer { return streamWriter{s, streamStdout} }
func (s *containerStdio) stderr() io.Writer { return streamWriter{s, streamStderr} }

// streamWriter receives one output stream of the container.
type streamWriter struct {
	s      *containerStdio
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.s.log.write(w.stream, p); err != nil {
		return 0, err
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for a := range w.s.attached {
		out := a.stdout
		if w.stream == streamStderr {
			out = a.stderr
		}
		if out == nil {
			continue
		}
		// A client that stopped reading is detached, never waited for.
		if _, err := out.Write(p); err != nil {
			delete(w.s.attached, a)
			a.once.Do(func() { close(a.failed) })
		}
	}
	return len(p), nil
}

// finish marks the output as ended and closes the log.
func (s *containerStdio) finish() error {
	close(s.outputDone)
	return s.log.close()
}

// close releases the container's stdin and log.
func (s *containerStdio) close() {
	if s.feed != nil {
		_ = s.feed.Close()
		_ = s.stdin.Close()
	}
	_ = s.log.close()
}

// attach connects a client until its context ends, the container's
// output ends or the client stops reading. The end of the client's stdin
// does not end it: with StdinOnce the container's stdin closes, and the
// container decides.
// closeStdin makes the container's process see the end of its stdin
// once the feed is closed: the shim's side must close too.
func (s *containerStdio) attach(done <-chan struct{}, stdin io.Reader, stdout, stderr io.Writer, closeStdin func()) {
	a := &attachment{stdout: stdout, stderr: stderr, failed: make(chan struct{})}
	if s.cfg.TTY {
		a.stderr = nil
	}
	s.mu.Lock()
	s.attached[a] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.attached, a)
		s.mu.Unlock()
	}()
	if stdin != nil && s.feed != nil {
		go func() {
			_, _ = io.Copy(s.feed, stdin)
			if s.cfg.StdinOnce {
				_ = s.feed.Close()
				closeStdin()
			}
		}()
	}
	select {
	case <-done:
	case <-s.outputDone:
	case <-a.failed:
	}
}

// labels records cfg on the container, so that an agent that restarts
// reconnects its streams the same way.
func (cfg StdioConfig) labels() map[string]string {
	return map[string]string{
		labelLogPath:     cfg.LogPath,
		labelStdin:       strconv.FormatBool(cfg.Stdin),
		labelStdinOnce:   strconv.FormatBool(cfg.StdinOnce),
		labelTTY:         strconv.FormatBool(cfg.TTY),
		labelLogMaxSize:  strconv.FormatInt(cfg.LogMaxSize, 10),
		labelLogMaxFiles: strconv.Itoa(cfg.LogMaxFiles),
	}
}

func stdioFromLabels(labels map[string]string) StdioConfig {
	flag := func(name string) bool {
		v, _ := strconv.ParseBool(labels[name])
		return v
	}
	maxSize, _ := strconv.ParseInt(labels[labelLogMaxSize], 10, 64)
	maxFiles, _ := strconv.Atoi(labels[labelLogMaxFiles])
	return StdioConfig{
		LogPath: labels[labelLogPath], Stdin: flag(labelStdin), StdinOnce: flag(labelStdinOnce), TTY: flag(labelTTY),
		LogMaxSize: maxSize, LogMaxFiles: maxFiles,
	}
}

// Labels the runtime keeps on a container for its standard streams.
const (
	labelLogPath     = "tower.dev/log-path"
	labelStdin       = "tower.dev/stdin"
	labelStdinOnce   = "tower.dev/stdin-once"
	labelTTY         = "tower.dev/tty"
	labelLogMaxSize  = "tower.dev/log-max-size"
	labelLogMaxFiles = "tower.dev/log-max-files"
)
