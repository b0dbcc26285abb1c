// Package containers is the node agent's view of containerd: a private
// daemon it can start, and a client that imports images and runs the
// containers of pods in Tower's own containerd namespace.
package containers

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime runs containers in one containerd namespace.
type Runtime struct {
	client    *client.Client
	namespace string
	// registryHostsDir configures registries in containerd's certs.d
	// layout; empty uses each registry's defaults.
	registryHostsDir string

	mu sync.Mutex
	// stdio holds the standard streams of the containers this process
	// started or adopted, by container ID.
	stdio map[string]*taskStdio
}

// taskStdio is a container's streams and the containerd IO copying them.
type taskStdio struct {
	streams *containerStdio
	io      cio.IO
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithRegistryHostsDir configures image pulls per registry from dir, laid
// out as containerd's certs.d (and `ctr --hosts-dir`): dir/<host[:port]>/
// holds a hosts.toml (mirrors, CA, client certificates, skip_verify), or
// Docker's ca.crt and client .cert/.key files.
func WithRegistryHostsDir(dir string) Option {
	return func(r *Runtime) { r.registryHostsDir = dir }
}

// Connect dials containerd at address (a unix socket path) and scopes every
// call to namespace.
func Connect(ctx context.Context, address, namespace string, opts ...Option) (*Runtime, error) {
	c, err := client.New(address, client.WithDefaultNamespace(namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connecting to containerd at %s: %w", address, err)
	}
	r := &Runtime{client: c, namespace: namespace, stdio: map[string]*taskStdio{}}
	for _, opt := range opts {
		opt(r)
	}
	return r, nil
}

// Close stops copying the streams of the containers this process runs
// (they keep running; their FIFOs stay for a later Watch to reattach)
// and releases the connection.
func (r *Runtime) Close() error {
	r.mu.Lock()
	for id, t := range r.stdio {
		t.io.Cancel()
		t.streams.close()
		delete(r.stdio, id)
	}
	r.mu.Unlock()
	return r.client.Close()
}

// Version is containerd's version, as nodeInfo.containerRuntimeVersion
// reports it without the scheme.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	v, err := r.client.Version(r.scoped(ctx))
	if err != nil {
		return "", fmt.Errorf("containerd version: %w", err)
	}
	return strings.TrimPrefix(v.Version, "v"), nil
}

func (r *Runtime) scoped(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

// NormalizeImage turns a pod's image reference into the fully qualified name
// containerd stores (busybox becomes docker.io/library/busybox:latest).
func NormalizeImage(image string) (string, error) {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", fmt.Errorf("parsing image %q: %w", image, err)
	}
	return named.String(), nil
}

// ImportArchive loads an OCI (or Docker) image archive and unpacks every
// image in it, returning their names.
func (r *Runtime) ImportArchive(ctx context.Context, path string) ([]string, error) {
	ctx = r.scoped(ctx)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image archive: %w", err)
	}
	defer f.Close()
	imported, err := r.client.Import(ctx, f, client.WithAllPlatforms(false))
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", path, err)
	}
	var names []string
	for _, img := range imported {
		image := client.NewImage(r.client, img)
		if err := image.Unpack(ctx, ""); err != nil {
			return nil, fmt.Errorf("unpacking %s from %s: %w", img.Name, path, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// ImportDirectory imports every *.tar archive in dir; a missing dir is not
// an error.
func (r *Runtime) ImportDirectory(ctx context.Context, dir string) ([]string, error) {
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var names []string
	for _, archive := range archives {
		imported, err := r.ImportArchive(ctx, archive)
		if err != nil {
			return names, err
		}
		names = append(names, imported...)
	}
	return names, nil
}

// Repository is the image's repository, normalized and without tag or
// digest (busybox:1 becomes docker.io/library/busybox), as registry
// credentials are looked up by it.
func Repository(image string) (string, error) {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", fmt.Errorf("parsing image %q: %w", image, err)
	}
	return reference.TrimNamed(named).String(), nil
}

// LocalImage returns the image when containerd has it; present is false
// when it does not.
func (r *Runtime) LocalImage(ctx context.Context, ref string) (image client.Image, present bool, err error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return nil, false, err
	}
	image, err = r.client.GetImage(r.scoped(ctx), name)
	switch {
	case errdefs.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("looking up image %s: %w", name, err)
	}
	return image, true, nil
}

// Credential authenticates an image pull to a registry.
type Credential struct {
	Username, Password string
}

// Pull fetches the image from its registry, authenticating with cred when
// the registry asks and cred is not nil, and unpacks it.
func (r *Runtime) Pull(ctx context.Context, ref string, cred *Credential) (client.Image, error) {
	ctx = r.scoped(ctx)
	name, err := NormalizeImage(ref)
	if err != nil {
		return nil, err
	}
	hosts := config.HostOptions{}
	if r.registryHostsDir != "" {
		hosts.HostDir = config.HostDirFromRoot(r.registryHostsDir)
	}
	if cred != nil {
		hosts.Credentials = func(string) (string, string, error) { return cred.Username, cred.Password, nil }
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, hosts)})
	image, err := r.client.Pull(ctx, name, client.WithPullUnpack, client.WithResolver(resolver))
	if err != nil {
		return nil, fmt.Errorf("failed to pull and unpack image %q: %w", name, err)
	}
	return image, nil
}

// ContainerSpec is what the agent asks of one container.
type ContainerSpec struct {
	ID     string
	Image  client.Image
	Labels map[string]string
	// Command replaces the image's entrypoint, Args its cmd, as in a pod.
	Command    []string
	Args       []string
	Env        []string
	WorkingDir string
	Hostname   string
	// NetNSPath joins the pod's network namespace.
	NetNSPath string
	Mounts    []specs.Mount

	MemoryLimitBytes uint64
	// CPUQuotaMicros per 100ms period; zero is unlimited.
	CPUQuotaMicros int64
	CPUShares      uint64

	// Stdio connects the container's standard streams.
	Stdio StdioConfig

	UID, GID               *int64
	ReadOnlyRootFilesystem bool
	Privileged             bool
	NoNewPrivileges        bool
	AddCapabilities        []string
	DropCapabilities       []string
}

const cpuPeriodMicros = 100000

// Create makes a container (not yet running) from spec.
func (r *Runtime) Create(ctx context.Context, spec ContainerSpec) error {
	ctx = r.scoped(ctx)
	opts := []oci.SpecOpts{oci.WithDefaultSpec(), oci.WithDefaultUnixDevices}
	switch {
	case len(spec.Command) > 0:
		opts = append(opts, oci.WithImageConfig(spec.Image), oci.WithProcessArgs(append(append([]string{}, spec.Command...), spec.Args...)...))
	case len(spec.Args) > 0:
		opts = append(opts, oci.WithImageConfigArgs(spec.Image, spec.Args))
	default:
		opts = append(opts, oci.WithImageConfig(spec.Image))
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.Hostname != "" {
		opts = append(opts, oci.WithHostname(spec.Hostname))
	}
	if spec.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetNSPath}))
	}
	if len(spec.Mounts) > 0 {
		opts = append(opts, oci.WithMounts(spec.Mounts))
	}
	if spec.MemoryLimitBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(spec.MemoryLimitBytes))
	}
	if spec.CPUQuotaMicros > 0 {
		opts = append(opts, oci.WithCPUCFS(spec.CPUQuotaMicros, cpuPeriodMicros))
	}
	if spec.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(spec.CPUShares))
	}
	if spec.UID != nil || spec.GID != nil {
		var uid, gid int64
		if spec.UID != nil {
			uid = *spec.UID
		}
		if spec.GID != nil {
			gid = *spec.GID
		}
		opts = append(opts, oci.WithUIDGID(uint32(uid), uint32(gid)))
	}
	if spec.Privileged {
		opts = append(opts, oci.WithPrivileged)
	}
	if len(spec.AddCapabilities) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(spec.AddCapabilities))
	}
	if len(spec.DropCapabilities) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(spec.DropCapabilities))
	}
	if spec.NoNewPrivileges {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if spec.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if spec.Stdio.TTY {
		opts = append(opts, oci.WithTTY)
	}
	labels := spec.Stdio.labels()
	for k, v := range spec.Labels {
		labels[k] = v
	}
	_, err := r.client.NewContainer(ctx, spec.ID,
		client.WithImage(spec.Image),
		client.WithNewSnapshot(spec.ID, spec.Image),
		client.WithContainerLabels(labels),
		client.WithNewSpec(opts...),
	)
	if err != nil {
		return fmt.Errorf("creating container %s: %w", spec.ID, err)
	}
	return nil
}

// Exit is how a container's process ended.
type Exit struct {
	Code int32
	At   time.Time
	Err  error
	// OOMKilled is set when the kernel's OOM killer killed a process of
	// the container.
	OOMKilled bool
}

// Start runs the container's process with its standard streams
// connected as its Stdio says (output logged in the CRI format) and
// returns its pid and a channel that receives its exit once. The channel
// lives as long as ctx.
func (r *Runtime) Start(ctx context.Context, id string) (uint32, <-chan Exit, error) {
	ctx = r.scoped(ctx)
	container, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return 0, nil, fmt.Errorf("loading container %s: %w", id, err)
	}
	labels, err := container.Labels(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("labels of %s: %w", id, err)
	}
	cfg := stdioFromLabels(labels)
	streams, err := newContainerStdio(cfg)
	if err != nil {
		return 0, nil, err
	}
	opts := streams.cioOptions()
	// The FIFOs live next to the log, where the pod's files are cleaned up.
	opts = append(opts, cio.WithFIFODir(filepath.Join(filepath.Dir(cfg.LogPath), fifoDirName)))
	create := cio.NewCreator(opts...)
	var taskIO cio.IO
	task, err := container.NewTask(ctx, func(id string) (cio.IO, error) {
		taskIO, err = create(id)
		return taskIO, err
	})
	if err != nil {
		streams.close()
		return 0, nil, fmt.Errorf("creating task for %s: %w", id, err)
	}
	r.track(id, streams, taskIO)
	exits, err := r.wait(ctx, task)
	if err != nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
		r.release(id)
		return 0, nil, err
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
		r.release(id)
		return 0, nil, fmt.Errorf("starting %s: %w", id, err)
	}
	return task.Pid(), exits, nil
}

// fifoDirName is the directory, next to a container's logs, holding the
// FIFOs of its standard streams.
const fifoDirName = "fifo"

// cioOptions connects containerd's copies of the container's streams to s.
func (s *containerStdio) cioOptions() []cio.Opt {
	opts := []cio.Opt{cio.WithStreams(s.stdinReader(), s.stdout(), s.stderr())}
	if s.cfg.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	return opts
}

// track records a container's streams; once its output ends (the
// process is gone) its log is closed.
func (r *Runtime) track(id string, streams *containerStdio, taskIO cio.IO) {
	r.mu.Lock()
	r.stdio[id] = &taskStdio{streams: streams, io: taskIO}
	r.mu.Unlock()
	go func() {
		taskIO.Wait()
		_ = streams.finish()
	}()
}

// release stops copying a container's streams and removes its FIFOs.
func (r *Runtime) release(id string) {
	r.mu.Lock()
	t := r.stdio[id]
	delete(r.stdio, id)
	r.mu.Unlock()
	if t == nil {
		return
	}
	t.io.Cancel()
	_ = t.io.Close()
	t.streams.close()
	if fifo := t.io.Config().Stdout; fifo != "" {
		_ = os.RemoveAll(filepath.Dir(fifo))
	}
}

// Attach connects streams to the running container's own stdio until ctx
// ends, the container's output ends or the client stops reading. Stdin reaches the container only when it has one; resizes
// reach its terminal.
func (r *Runtime) Attach(ctx context.Context, id string, streams ExecStreams) error {
	r.mu.Lock()
	t := r.stdio[id]
	r.mu.Unlock()
	if t == nil {
		return fmt.Errorf("container %s is not running", id)
	}
	ctx = r.scoped(ctx)
	task, err := r.task(ctx, id)
	if err != nil {
		return err
	}
	if task == nil {
		return fmt.Errorf("container %s is not running", id)
	}
	if streams.Resize != nil && t.streams.cfg.TTY {
		go func() {
			for size := range streams.Resize {
				_ = task.Resize(ctx, size[0], size[1])
			}
		}()
	}
	closeStdin := func() { _ = task.CloseIO(context.WithoutCancel(ctx), client.WithStdinCloser) }
	t.streams.attach(ctx.Done(), streams.Stdin, streams.Stdout, streams.Stderr, closeStdin)
	return nil
}

// Watch returns the exit channel of an already running container, for an
// agent that restarted and adopts it. ok is false when it is not running.
func (r *Runtime) Watch(ctx context.Context, id string) (exits <-chan Exit, ok bool, err error) {
	ctx = r.scoped(ctx)
	task, err := r.task(ctx, id)
	if err != nil || task == nil {
		return nil, false, err
	}
	status, err := task.Status(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("status of %s: %w", id, err)
	}
	if status.Status != client.Running {
		return nil, false, nil
	}
	if err := r.reattach(ctx, id); err != nil {
		return nil, false, err
	}
	exits, err = r.wait(ctx, task)
	return exits, err == nil, err
}

// reattach reconnects the streams of a container this process did not
// start (the agent restarted) to its FIFOs, so that its output is logged
// again; what it wrote meanwhile waited in the pipes.
func (r *Runtime) reattach(ctx context.Context, id string) error {
	r.mu.Lock()
	_, tracked := r.stdio[id]
	r.mu.Unlock()
	if tracked {
		return nil
	}
	container, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("loading container %s: %w", id, err)
	}
	labels, err := container.Labels(ctx)
	if err != nil {
		return fmt.Errorf("labels of %s: %w", id, err)
	}
	cfg := stdioFromLabels(labels)
	if cfg.LogPath == "" {
		return nil
	}
	streams, err := newContainerStdio(cfg)
	if err != nil {
		return err
	}
	attach := cio.NewAttach(streams.cioOptions()...)
	var taskIO cio.IO
	if _, err := container.Task(ctx, func(fifos *cio.FIFOSet) (cio.IO, error) {
		taskIO, err = attach(fifos)
		return taskIO, err
	}); err != nil {
		streams.close()
		return fmt.Errorf("reattaching the streams of %s: %w", id, err)
	}
	r.track(id, streams, taskIO)
	return nil
}

// Running reports whether the container's process runs now; a missing
// container does not.
func (r *Runtime) Running(ctx context.Context, id string) (bool, error) {
	ctx = r.scoped(ctx)
	task, err := r.task(ctx, id)
	if err != nil || task == nil {
		return false, err
	}
	status, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("status of %s: %w", id, err)
	}
	return status.Status == client.Running, nil
}

func (r *Runtime) wait(ctx context.Context, task client.Task) (<-chan Exit, error) {
	statusC, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", task.ID(), err)
	}
	// The cgroup outlives the process until the task is deleted, so its
	// OOM counter is still readable when the exit arrives.
	cgroup := ""
	if spec, err := task.Spec(ctx); err == nil && spec.Linux != nil {
		cgroup = spec.Linux.CgroupsPath
	}
	exits := make(chan Exit, 1)
	go func() {
		status, ok := <-statusC
		if !ok {
			return
		}
		code, at, err := status.Result()
		exits <- Exit{Code: int32(code), At: at, Err: err, OOMKilled: oomKilled(cgroup)}
	}()
	return exits, nil
}

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// oomKilled reports whether the OOM killer killed a process in the
// cgroup: memory.oom_control of the v1 memory controller, or
// memory.events of a unified (v2) hierarchy.
func oomKilled(cgroupsPath string) bool {
	if cgroupsPath == "" || strings.Contains(cgroupsPath, ":") {
		return false
	}
	for _, file := range []string{
		filepath.Join(cgroupRoot, "memory", cgroupsPath, "memory.oom_control"),
		filepath.Join(cgroupRoot, cgroupsPath, "memory.events"),
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		return oomKillCount(string(data)) > 0
	}
	return false
}

// oomKillCount reads the oom_kill line of memory.oom_control or
// memory.events.
func oomKillCount(content string) int64 {
	for line := range strings.Lines(content) {
		key, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && key == "oom_kill" {
			n, _ := strconv.ParseInt(value, 10, 64)
			return n
		}
	}
	return 0
}

func (r *Runtime) task(ctx context.Context, id string) (client.Task, error) {
	container, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading container %s: %w", id, err)
	}
	task, err := container.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading task of %s: %w", id, err)
	}
	return task, nil
}

// Stop ends the container's process: SIGTERM, then SIGKILL to everything
// in the container once grace has passed (a PID 1 without a handler ignores
// SIGTERM). It returns once the process is gone; a container that is not
// running is already stopped.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.scoped(ctx)
	task, err := r.task(ctx, id)
	if err != nil || task == nil {
		return err
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", id, err)
	}
	if grace > 0 {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("sending SIGTERM to %s: %w", id, err)
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-statusC:
			return nil
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("sending SIGKILL to %s: %w", id, err)
	}
	select {
	case <-statusC:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove deletes the container, its task and its snapshot, killing a
// process that still runs. A missing container is not an error.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	ctx = r.scoped(ctx)
	container, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading container %s: %w", id, err)
	}
	if task, err := container.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("deleting task of %s: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("loading task of %s: %w", id, err)
	}
	r.release(id)
	if err := container.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting container %s: %w", id, err)
	}
	return nil
}

// ContainerInfo is a container found in the namespace.
type ContainerInfo struct {
	ID      string
	Labels  map[string]string
	Running bool
}

// List returns the namespace's containers carrying label (any value).
func (r *Runtime) List(ctx context.Context, label string) ([]ContainerInfo, error) {
	ctx = r.scoped(ctx)
	list, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q", label))
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	infos := make([]ContainerInfo, 0, len(list))
	for _, c := range list {
		labels, err := c.Labels(ctx)
		if err != nil {
			return nil, fmt.Errorf("labels of %s: %w", c.ID(), err)
		}
		info := ContainerInfo{ID: c.ID(), Labels: labels}
		if task, err := c.Task(ctx, nil); err == nil {
			if status, err := task.Status(ctx); err == nil {
				info.Running = status.Status == client.Running
			}
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// Exec runs args inside the running container, with its environment and
// user, and returns the exit code, as exec probes need. Output is
// discarded.
func (r *Runtime) Exec(ctx context.Context, id, execID string, args []string) (int32, error) {
	ctx = r.scoped(ctx)
	task, err := r.task(ctx, id)
	if err != nil {
		return 0, err
	}
	if task == nil {
		return 0, fmt.Errorf("container %s is not running", id)
	}
	spec, err := task.Spec(ctx)
	if err != nil {
		return 0, fmt.Errorf("spec of %s: %w", id, err)
	}
	process := *spec.Process
	process.Args = args
	process.Terminal = false
	proc, err := task.Exec(ctx, execID, &process, cio.NullIO)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer func() { _, _ = proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill) }()
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("waiting for exec in %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return 0, fmt.Errorf("starting exec in %s: %w", id, err)
	}
	select {
	case status := <-statusC:
		code, _, err := status.Result()
		return int32(code), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// ExecStreams are the standard streams of a command run in a container;
// nil ones are not connected.
type ExecStreams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize carries terminal sizes (width, height) while a TTY runs.
	Resize <-chan [2]uint32
}

// ExecAttached runs args inside the running container connected to
// streams and returns its exit code once it ends and its output is
// delivered.
func (r *Runtime) ExecAttached(ctx context.Context, id, execID string, args []string, streams ExecStreams) (int32, error) {
	ctx = r.scoped(ctx)
	task, err := r.task(ctx, id)
	if err != nil {
		return 0, err
	}
	if task == nil {
		return 0, fmt.Errorf("container %s is not running", id)
	}
	spec, err := task.Spec(ctx)
	if err != nil {
		return 0, fmt.Errorf("spec of %s: %w", id, err)
	}
	process := *spec.Process
	process.Args = args
	process.Terminal = streams.TTY
	stdin := streams.Stdin
	stdinDone := make(chan struct{})
	if stdin != nil {
		stdin = &eofSignal{r: stdin, done: stdinDone}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, streams.Stdout, streams.Stderr)}
	if streams.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	proc, err := task.Exec(ctx, execID, &process, cio.NewCreator(opts...))
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer func() { _, _ = proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill) }()
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("waiting for exec in %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return 0, fmt.Errorf("starting exec in %s: %w", id, err)
	}
	if stdin == nil {
		stdinDone = nil
	}
	for {
		select {
		case <-stdinDone:
			// The client closed stdin: the process must see end of file,
			// which takes closing the shim's side too.
			stdinDone = nil
			if err := proc.CloseIO(ctx, client.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
				return 0, fmt.Errorf("closing stdin of exec in %s: %w", id, err)
			}
		case size, ok := <-streams.Resize:
			if !ok {
				streams.Resize = nil
				continue
			}
			if err := proc.Resize(ctx, size[0], size[1]); err != nil && !errdefs.IsNotFound(err) {
				return 0, fmt.Errorf("resizing terminal of exec in %s: %w", id, err)
			}
		case status := <-statusC:
			code, _, err := status.Result()
			// The output the process wrote is copied out before the
			// caller reports its exit.
			proc.IO().Wait()
			return int32(code), err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// eofSignal closes done when its reader reaches its end.
type eofSignal struct {
	r    io.Reader
	done chan struct{}
	once sync.Once
}

func (e *eofSignal) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.done) })
	}
	return n, err
}
