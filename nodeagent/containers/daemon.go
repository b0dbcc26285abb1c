package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// DaemonConfig describes a private containerd run for Tower.
type DaemonConfig struct {
	// Dir holds the daemon's config, root, state, socket and log.
	Dir string
	// Binary is the containerd executable; empty looks up "containerd" on
	// PATH.
	Binary string
}

// Daemon is a containerd process started by Tower.
type Daemon struct {
	// Address is the absolute path of the daemon's gRPC socket.
	Address string
	// LogPath is where the daemon's output goes.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startTimeout bounds how long a fresh containerd may take to answer on its
// socket; it is usually ready in well under a second.
const startTimeout = 30 * time.Second

// configTemplate is a version 2 configuration, which containerd 1.6 (the
// Debian package) reads natively and 2.x migrates, unlike version 3 or 4,
// whose top-level [grpc] section 2.x would silently ignore. The CRI plugins
// are off: Tower is the kubelet and speaks to containerd directly.
const configTemplate = `version = 2
root = %[1]q
state = %[2]q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = %[5]q
`

// StartDaemon writes a configuration under cfg.Dir and starts containerd
// with it, returning once the daemon answers on its socket. The daemon runs
// until Stop.
func StartDaemon(ctx context.Context, cfg DaemonConfig) (*Daemon, error) {
	binary := cfg.Binary
	if binary == "" {
		path, err := exec.LookPath("containerd")
		if err != nil {
			return nil, fmt.Errorf("containerd is not installed (apt-get install containerd runc): %w", err)
		}
		binary = path
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving containerd dir: %w", err)
	}
	for _, sub := range []string{"root", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating containerd %s dir: %w", sub, err)
		}
	}
	d := &Daemon{
		Address: filepath.Join(dir, "containerd.sock"),
		LogPath: filepath.Join(dir, "containerd.log"),
		done:    make(chan struct{}),
	}
	config := fmt.Sprintf(configTemplate,
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.Address,
		filepath.Join(dir, "containerd.ttrpc.sock"), filepath.Join(dir, "containerd.debug.sock"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("writing containerd config: %w", err)
	}
	// A socket left by a daemon that died would make the readiness check
	// below pass against nothing.
	if err := os.Remove(d.Address); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale containerd socket: %w", err)
	}
	logFile, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening containerd log: %w", err)
	}
	d.cmd = exec.Command(binary, "--config", configPath)
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	// Own process group: Ctrl-C on `tower up` reaches Tower, which stops
	// its pods first and the daemon last.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting containerd: %w", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		logFile.Close()
		close(d.done)
	}()
	logr.FromContextOrDiscard(ctx).Info("started containerd", "pid", d.cmd.Process.Pid, "address", d.Address, "log", d.LogPath)

	if err := d.waitReady(ctx); err != nil {
		return nil, errors.Join(err, d.Stop(context.Background()))
	}
	return d, nil
}

func (d *Daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-d.done:
			return fmt.Errorf("containerd exited during start-up: %v (see %s)", d.err, d.LogPath)
		case <-ctx.Done():
			return fmt.Errorf("containerd did not create %s: %w (see %s)", d.Address, ctx.Err(), d.LogPath)
		case <-ticker.C:
		}
		if _, err := os.Stat(d.Address); err != nil {
			continue
		}
		rt, err := Connect(ctx, d.Address, "default")
		if err != nil {
			continue
		}
		_, err = rt.Version(ctx)
		rt.Close()
		if err == nil {
			return nil
		}
	}
}

// Stop sends SIGTERM and waits for the daemon to exit, killing it if it
// has not within ctx or ten seconds. Running containers survive (their
// shims are separate processes).
func (d *Daemon) Stop(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling containerd: %w", err)
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-d.done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	if err := d.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing containerd: %w", err)
	}
	<-d.done
	return nil
}
