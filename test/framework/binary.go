package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// towerPackage is the import path of the tower command.
const towerPackage = "tower.dev/tower/cmd/tower"

// BuildTower compiles the tower binary into dir and returns its path. It
// must be called from inside the module (as tests and `go run` are).
func BuildTower(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "tower")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, towerPackage)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", towerPackage, err, out.String())
	}
	return bin, nil
}

// Process is a server binary running as a child process, so that its CPU
// time and memory can be measured on its own.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

// StartProcess runs bin with args, its output going to logPath.
func StartProcess(name, logPath, bin string, args ...string) (*Process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	// Own process group: a signal to the test does not reach the server
	// before the test had a chance to measure and stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s (%s %s): %w", name, bin, strings.Join(args, " "), err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id, for reading /proc.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then kills
// it. An exit caused by the SIGTERM is not an error.
func (p *Process) Stop(ctx context.Context, grace time.Duration) error {
	if exited, err := p.Exited(); exited {
		return exitError(p.Name, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", p.Name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return exitError(p.Name, p.err)
	case <-timer.C:
	case <-ctx.Done():
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	<-p.done
	return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.Name, grace)
}

// LogTail returns the last n bytes of the process's log, for error reports.
func (p *Process) LogTail(n int64) string {
	f, err := os.Open(p.log.Name())
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return fmt.Sprintf("(log unreadable: %v)", err)
		}
	}
	tail, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return string(tail)
}

func exitError(name string, err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() && status.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s exited: %w", name, err)
	}
	return nil
}
