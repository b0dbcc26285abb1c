package server

import (
	"bufio"
	"bytes"
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

	"tower.dev/tower/nodeagent/containers"
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
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := &flushingWriter{w: w, rc: http.NewResponseController(w), limit: opts.limitBytes}
	running := func(ctx context.Context) bool {
		return s.cfg.Containers != nil && s.cfg.Containers.ContainerRunning(ctx, uid, container, run)
	}
	path := filepath.Join(logDir, strconv.Itoa(run)+".log")
	if err := s.copyLog(r.Context(), path, out, opts, running); err != nil && !errors.Is(err, errLimitReached) && r.Context().Err() == nil {
		// The status line is gone; all that is left is to end the stream.
		_, _ = fmt.Fprintf(w, "\nerror reading log: %v\n", err)
	}
}

// copyLog writes the selected lines of the container log at path (its
// rotated files first) to out and, when following, what the container
// writes next until it stops or ctx ends. The files are in the CRI log
// format; each entry carries its own time, which since and timestamps
// use.
func (s *Server) copyLog(ctx context.Context, path string, out io.Writer, opts logOptions, running func(context.Context) bool) error {
	printer := &logPrinter{out: out, timestamps: opts.timestamps, since: opts.since}
	if opts.tailLines >= 0 {
		counter := &logPrinter{out: io.Discard, since: opts.since}
		if err := readLogFiles(path, counter.print); err != nil {
			return err
		}
		total := counter.lines
		// A last line still open is one of the tail's lines.
		if counter.midLine {
			total++
		}
		printer.skipLines = max(total-opts.tailLines, 0)
	}
	reader, err := openLogReader(path)
	if err != nil {
		return err
	}
	defer reader.close()
	if !opts.follow {
		return reader.drain(printer.print, true)
	}
	ticker := time.NewTicker(s.cfg.FollowPollInterval)
	defer ticker.Stop()
	for {
		// Whether it runs is asked before reading, so that output written
		// just before the container stopped is still read below.
		stillRunning := running(ctx)
		if err := reader.drain(printer.print, !stillRunning); err != nil {
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

// readLogFiles calls handle with every entry of the log at path as it
// is now, rotated files first.
func readLogFiles(path string, handle func([]byte) error) error {
	reader, err := openLogReader(path)
	if err != nil {
		return err
	}
	defer reader.close()
	return reader.drain(handle, true)
}

// logReader reads the entries of a container log across its rotated
// files and, when the current file is rotated while it reads, on into
// the new one.
type logReader struct {
	path string
	// pending are the rotated files not read yet, oldest first.
	pending []string
	file    *os.File
	reader  *bufio.Reader
	// partial is an entry whose newline has not been written yet.
	partial []byte
}

func openLogReader(path string) (*logReader, error) {
	rotated, err := containers.RotatedLogs(path)
	if err != nil {
		return nil, err
	}
	r := &logReader{path: path, pending: append(rotated, path)}
	if err := r.next(); err != nil {
		return nil, err
	}
	return r, nil
}

// next opens the next file; a rotated file removed meanwhile is skipped.
func (r *logReader) next() error {
	for len(r.pending) > 0 {
		name := r.pending[0]
		r.pending = r.pending[1:]
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) && len(r.pending) > 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("opening log: %w", err)
		}
		r.close()
		r.file, r.reader = f, bufio.NewReader(f)
		return nil
	}
	return nil
}

func (r *logReader) close() {
	if r.file != nil {
		_ = r.file.Close()
	}
}

// rotated reports whether the file at path is no longer the one being
// read: the writer renamed it and started a new one.
func (r *logReader) rotated() bool {
	current, err := os.Stat(r.path)
	if err != nil {
		return false
	}
	open, err := r.file.Stat()
	return err == nil && !os.SameFile(current, open)
}

// drain hands every complete entry available now to handle. An entry
// without its newline is held back (it may still be being written)
// unless final is set.
func (r *logReader) drain(handle func([]byte) error, final bool) error {
	for {
		chunk, err := r.reader.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading log: %w", err)
		}
		line := append(r.partial, chunk...)
		r.partial = nil
		if errors.Is(err, io.EOF) {
			switch {
			case len(r.pending) > 0:
				// The rest of this entry, if any, is lost with the
				// writer's rotation; the next file starts afresh.
				if err := r.next(); err != nil {
					return err
				}
				continue
			case r.rotated():
				r.pending = []string{r.path}
				if err := r.next(); err != nil {
					return err
				}
				r.partial = line
				continue
			case !final:
				r.partial = line
				return nil
			case len(line) == 0:
				return nil
			}
		}
		if err := handle(line); err != nil {
			return err
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// logPrinter turns CRI log entries into what a client reads: the
// content, a line's timestamp first when asked, entries before since left
// out and the first skipLines lines skipped (for tailLines).
type logPrinter struct {
	out        io.Writer
	timestamps bool
	since      time.Time
	skipLines  int64
	// lines counts the complete lines seen; midLine is set while a
	// line's later parts are still to come.
	lines   int64
	midLine bool
}

func (p *logPrinter) print(entry []byte) error {
	stamp, full, content, err := parseCRIEntry(entry)
	if err != nil {
		return err
	}
	if !p.since.IsZero() && stamp.Before(p.since) {
		return nil
	}
	startsLine := !p.midLine
	skipped := p.lines < p.skipLines
	p.midLine = !full
	if full {
		p.lines++
		content = append(content, '\n')
	}
	if skipped {
		return nil
	}
	if startsLine && p.timestamps {
		if _, err := io.WriteString(p.out, stamp.UTC().Format(time.RFC3339Nano)+" "); err != nil {
			return err
		}
	}
	_, err = p.out.Write(content)
	return err
}

// parseCRIEntry splits one line of a CRI log: "<time> <stream> <F|P>
// <content>\n". The content is returned without the newline; full is
// false for a part of a longer line. Both streams are served together.
func parseCRIEntry(line []byte) (stamp time.Time, full bool, content []byte, err error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	fields := bytes.SplitN(line, []byte(" "), 4)
	if len(fields) < 3 {
		return time.Time{}, false, nil, fmt.Errorf("malformed log entry %q", line)
	}
	stamp, err = time.Parse(time.RFC3339Nano, string(fields[0]))
	if err != nil {
		return time.Time{}, false, nil, fmt.Errorf("malformed time in log entry %q: %w", line, err)
	}
	if len(fields) == 4 {
		content = fields[3]
	}
	return stamp, string(fields[2]) != "P", append([]byte(nil), content...), nil
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
