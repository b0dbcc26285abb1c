package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"tower.dev/tower/test/framework"
)

// compactionInterval is kube-apiserver's default, given to both servers.
const compactionInterval = 5 * time.Minute

// cluster is one server under test with the client the load uses.
type cluster struct {
	name      string
	cp        *framework.ControlPlane
	clientset *kubernetes.Clientset
}

func startCluster(ctx context.Context, bins framework.Binaries, dir string) (*cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	cp, err := framework.StartProcesses(ctx, dir, bins, framework.WithCompactionInterval(compactionInterval))
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", bins.Name, err)
	}
	config := rest.CopyConfig(cp.Config)
	// Like for like: kube-apiserver gzips large responses when asked,
	// Tower does not (yet); on loopback compression only costs CPU.
	config.DisableCompression = true
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("building clientset: %w", err), cp.Stop())
	}
	return &cluster{name: bins.Name, cp: cp, clientset: clientset}, nil
}
