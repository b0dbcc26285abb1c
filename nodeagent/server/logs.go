package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// logOptions are kubelet's containerLogs query parameters.
type logOptions struct {
	follow     bool
	previous   bool
	timestamps bool
	// tailLines < 0 means all lines.
	tailLines int64
	// limitBytes <= 0 means no limit.
	limitBytes int64
	// since is zero when every line is wanted.
	since time.Time
}

func parseLogOptions(query url.Values, now time.Time) (logOptions, error) {
	opts := logOptions{tailLines: -1}
	var err error
	boolParam := func(name string) bool {
		if err != nil || !query.Has(name) {
			return false
		}
		var v bool
		v, err = strconv.ParseBool(query.Get(name))
		if err != nil {
			err = fmt.Errorf("parameter %s: %w", name, err)
		}
		return v
	}
	intParam := func(name string, min int64) (int64, bool) {
		if err != nil || !query.Has(name) {
			return 0, false
		}
		var v int64
		v, err = strconv.ParseInt(query.Get(name), 10, 64)
		if err != nil {
			err = fmt.Errorf("parameter %s: %w", name, err)
			return 0, false
		}
		if v < min {
			err = fmt.Errorf("parameter %s: must be greater than or equal to %d", name, min)
		}
		return v, true
	}
	opts.follow = boolParam("follow")
	opts.previous = boolParam("previous")
	opts.timestamps = boolParam("timestamps")
	if v, ok := intParam("tailLines", 0); ok {
		opts.tailLines = v
	}
	if v, ok := intParam("limitBytes", 1); ok {
		opts.limitBytes = v
	}
	if v, ok := intParam("sinceSeconds", 1); ok {
		opts.since = now.Add(-time.Duration(v) * time.Second)
	}
	if err != nil {
		return logOptions{}, err
	}
	if query.Has("sinceTime") {
		if query.Has("sinceSeconds") {
			return logOptions{}, errors.New("at most one of sinceTime or sinceSeconds may be specified")
		}
		t, err := time.Parse(time.RFC3339, query.Get("sinceTime"))
		if err != nil {
			return logOptions{}, fmt.Errorf("parameter sinceTime: %w", err)
		}
		opts.since = t
	}
	return opts, nil
}

// errNotFound marks a pod this node has no directory for.
var errNotFound = errors.New("not found")

// podDir finds the directory of the pod namespace/name; when the name was
// reused, the most recently changed one is the live pod's.
func (s *Server) podDir(namespace, name string) (dir, uid string, err error) {
	matches, err := filepath.Glob(filepath.Join(s.cfg.PodsDir, namespace+"_"+name+"_*"))
	if err != nil {
		return "", "", fmt.Errorf("listing pod directories: %w", err)
	}
	var newest time.Time
	for _, m := range matches {
		info, err := os.Stat(m)
		if err != nil || !info.IsDir() {
			continue
		}
		if dir == "" || info.ModTime().After(newest) {
			dir, newest = m, info.ModTime()
		}
	}
	if dir == "" {
		return "", "", fmt.Errorf("pod %s/%s: %w", namespace, name, errNotFound)
	}
	return dir, strings.TrimPrefix(filepath.Base(dir), namespace+"_"+name+"_"), nil
}

// runs lists the restart counts a container has log files for, oldest
// first.
func runs(logDir string) ([]int, error) {
	entries, err := os.ReadDir(logDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %w", logDir, err)
	}
	var counts []int
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log"))
		if err == nil && strings.HasSuffix(e.Name(), ".log") {
			counts = append(counts, n)
		}
	}
	slices.Sort(counts)
	return counts, nil
}

func (s *Server) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	namespace, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	dir, uid, err := s.podDir(namespace, podName)
	switch {
	case errors.Is(err, errNotFound):
		httpError(w, http.StatusNotFound, "pod %q not found on this node", namespace+"/"+podName)
		return
	case err != nil:
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	logDir := filepath.Join(dir, "logs", container)
	counts, err := runs(logDir)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if len(counts) == 0 {
		httpError(w, http.StatusBadRequest, "container %q in pod %q is waiting to start", container, podName)
		return
	}
	run := counts[len(counts)-1]
	if opts.previous {
		if len(counts) < 2 {
			httpError(w, http.StatusBadRequest, "previous terminated container %q in pod %q not found", container, podName)
			return
		}
		run = counts[len(counts)-2]
		// A previous run has ended: there is nothing to follow.
		opts.follow = false
	}
	f, err := os.Open(filepath.Join(logDir, strconv.Itoa(run)+".log"))
	if err != nil {
		httpError(w, http.StatusInternalServerError, "opening log: %v", err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := &flushingWriter{w: w, rc: http.NewResponseController(w), limit: opts.limitBytes}
	running := func(ctx context.Context) bool {
		return s.cfg.Containers != nil && s.cfg.Containers.ContainerRunning(ctx, uid, container, run)
	}
	if err := s.copyLog(r.Context(), f, out, opts, running); err != nil && !errors.Is(err, errLimitReached) && r.Context().Err() == nil {
		// The status line is gone; all that is left is to end the stream.
		_, _ = fmt.Fprintf(w, "\nerror reading log: %v\n", err)
	}
}

// copyLog writes the selected lines of f to out and, when following,
// what the container writes next until it stops or ctx ends.
//
// The runtime writes container output as it comes, without per-line
// times, so a line's time is approximated: lines already in the file
// carry the file's last modification time (no line is newer), lines seen
// while following carry the time they were read.
func (s *Server) copyLog(ctx context.Context, f *os.File, out io.Writer, opts logOptions, running func(context.Context) bool) error {
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat log: %w", err)
	}
	modified := info.ModTime()
	end := info.Size()
	start := int64(0)
	if opts.tailLines >= 0 {
		if start, err = tailOffset(f, end, opts.tailLines); err != nil {
			return err
		}
	}
	if !opts.since.IsZero() && modified.Before(opts.since) {
		start = end
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("seek log: %w", err)
	}
	if !opts.follow {
		lines := &lineCopier{reader: bufio.NewReader(io.LimitReader(f, end-start)), out: out, timestamps: opts.timestamps}
		return lines.copy(func() time.Time { return modified }, true)
	}
	lines := &lineCopier{reader: bufio.NewReader(f), out: out, timestamps: opts.timestamps}
	if err := lines.copy(func() time.Time { return modified }, false); err != nil {
		return err
	}
	return s.follow(ctx, lines, running)
}

// follow streams what is appended to the log until the container is no
// longer running and everything it wrote has been sent.
func (s *Server) follow(ctx context.Context, lines *lineCopier, running func(context.Context) bool) error {
	ticker := time.NewTicker(s.cfg.FollowPollInterval)
	defer ticker.Stop()
	for {
		// Whether it runs is asked before reading, so that output written
		// just before the container stopped is still read below.
		stillRunning := running(ctx)
		if err := lines.copy(time.Now, !stillRunning); err != nil {
			return err
		}
		if !stillRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// lineCopier copies whole lines of a log, each prefixed with a timestamp
// when asked.
type lineCopier struct {
	reader     *bufio.Reader
	out        io.Writer
	timestamps bool
	// partial is the start of a line whose newline has not been written
	// yet.
	partial []byte
}

// copy copies the lines available now. A last line without its newline
// is held back (it may still be being written) unless final is set.
func (c *lineCopier) copy(stamp func() time.Time, final bool) error {
	for {
		chunk, err := c.reader.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading log: %w", err)
		}
		line := append(c.partial, chunk...)
		c.partial = nil
		if errors.Is(err, io.EOF) && !final {
			c.partial = line
			return nil
		}
		if len(line) == 0 {
			return nil
		}
		if c.timestamps {
			if _, err := io.WriteString(c.out, stamp().UTC().Format(time.RFC3339Nano)+" "); err != nil {
				return err
			}
		}
		if _, err := c.out.Write(line); err != nil {
			return err
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// tailOffset returns where the last n lines of the first size bytes of f
// begin.
func tailOffset(f *os.File, size, n int64) (int64, error) {
	if n == 0 {
		return size, nil
	}
	const block = 32 * 1024
	buf := make([]byte, block)
	pos := size
	newlines := int64(0)
	// A newline ending the file closes the last line; it does not start
	// another one.
	skipLast := true
	for pos > 0 {
		readSize := min(int64(block), pos)
		pos -= readSize
		if _, err := f.ReadAt(buf[:readSize], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("reading log: %w", err)
		}
		for i := readSize - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast {
				skipLast = false
				continue
			}
			newlines++
			if newlines == n {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}

// errLimitReached ends a copy once limitBytes have been written.
var errLimitReached = errors.New("limitBytes reached")

// flushingWriter sends every write to the client at once (followers see
// lines as they come) and stops after limit bytes when limit is positive.
type flushingWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	limit   int64
	written int64
}

func (fw *flushingWriter) Write(p []byte) (int, error) {
	truncated := false
	if fw.limit > 0 && fw.written+int64(len(p)) > fw.limit {
		p = p[:fw.limit-fw.written]
		truncated = true
	}
	n, err := fw.w.Write(p)
	fw.written += int64(n)
	if err != nil {
		return n, err
	}
	if err := fw.rc.Flush(); err != nil {
		return n, fmt.Errorf("flushing log stream: %w", err)
	}
	if truncated || (fw.limit > 0 && fw.written >= fw.limit) {
		return n, errLimitReached
	}
	return n, nil
}
