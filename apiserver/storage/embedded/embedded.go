// Package embedded runs an etcd server inside the current process, for
// `tower up` and for tests that need a real etcd.
package embedded

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config describes the embedded etcd member.
type Config struct {
	// DataDir holds the member's WAL and database; it is created if missing.
	DataDir string
	// ClientURL and PeerURL are the listen (and advertised) URLs; empty picks
	// a free loopback port.
	ClientURL, PeerURL string
	// UnsafeNoFsync trades durability for speed; for tests only.
	UnsafeNoFsync bool
	// QuotaBackendBytes limits the database size; 0 keeps etcd's default.
	QuotaBackendBytes int64
	// MaxRequestBytes limits one request; 0 keeps etcd's default (1.5 MiB).
	MaxRequestBytes uint
	// Logger receives etcd's logs; nil logs errors only, to stderr.
	Logger *zap.Logger
	// WatchProgressNotifyInterval is how often etcd tells idle watchers the
	// current revision; 0 uses 5s, which keeps idle watch caches fresh.
	WatchProgressNotifyInterval time.Duration
}

// Etcd is a running embedded etcd member.
type Etcd struct {
	server    *embed.Etcd
	endpoints []string
	// quietLevel, when Tower chose the logger, is raised on Close: etcd logs
	// every listener it shuts down as an error.
	quietLevel *zap.AtomicLevel
}

// startAttempts bounds retries when a picked free port is taken by someone
// else between picking and binding.
const startAttempts = 3

// Start launches etcd and returns once it serves clients.
func Start(ctx context.Context, cfg Config) (*Etcd, error) {
	var lastErr error
	for range startAttempts {
		e, err := start(ctx, cfg)
		if err == nil {
			return e, nil
		}
		lastErr = err
		pickedPorts := cfg.ClientURL == "" || cfg.PeerURL == ""
		if !pickedPorts || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, cfg Config) (*Etcd, error) {
	clientURL, err := urlOrFreePort(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("client url: %w", err)
	}
	peerURL, err := urlOrFreePort(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("peer url: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = "tower"
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	// A lone member needs no network-sized raft clock: with etcd's
	// defaults it waits about half a second to elect itself.
	ec.TickMs, ec.ElectionMs = 10, 100
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	if cfg.QuotaBackendBytes > 0 {
		ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	}
	if cfg.MaxRequestBytes > 0 {
		ec.MaxRequestBytes = cfg.MaxRequestBytes
	}
	ec.WatchProgressNotifyInterval = cfg.WatchProgressNotifyInterval
	if ec.WatchProgressNotifyInterval == 0 {
		ec.WatchProgressNotifyInterval = 5 * time.Second
	}
	logger := cfg.Logger
	var quietLevel *zap.AtomicLevel
	if logger == nil {
		level := zap.NewAtomicLevelAt(zapcore.ErrorLevel)
		quietLevel = &level
		logger = quietLogger(level)
	}
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)

	server, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-server.Server.ReadyNotify():
	case err := <-server.Err():
		server.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-ctx.Done():
		server.Close()
		return nil, fmt.Errorf("waiting for embedded etcd: %w", ctx.Err())
	}
	return &Etcd{server: server, endpoints: []string{clientURL.String()}, quietLevel: quietLevel}, nil
}

// Endpoints are the client URLs to hand to clientv3.
func (e *Etcd) Endpoints() []string { return e.endpoints }

// Err reports a fatal server error after start.
func (e *Etcd) Err() <-chan error { return e.server.Err() }

// Close stops the server and waits for it to release its files and ports.
func (e *Etcd) Close() {
	if e.quietLevel != nil {
		e.quietLevel.SetLevel(zapcore.FatalLevel)
	}
	e.server.Close()
}

func urlOrFreePort(raw string) (*url.URL, error) {
	if raw != "" {
		return url.Parse(raw)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pick a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, fmt.Errorf("release picked port: %w", err)
	}
	return &url.URL{Scheme: "http", Host: addr}, nil
}

// quietLogger reports only errors: etcd logs every member state change at
// info level, which drowns the rest of Tower's output.
func quietLogger(level zap.AtomicLevel) *zap.Logger {
	encoderConfig := zap.NewProductionEncoderConfig()
	encoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	encoder := zapcore.NewConsoleEncoder(encoderConfig)
	core := zapcore.NewCore(encoder, zapcore.Lock(os.Stderr), level)
	return zap.New(core)
}
