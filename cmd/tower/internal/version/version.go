// Package version reports which Tower this binary is and which Kubernetes
// API it implements.
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Set at link time by the Makefile:
//
//	-X tower.dev/tower/cmd/tower/internal/version.tower=v0.1.0
//	-X tower.dev/tower/cmd/tower/internal/version.commit=<git sha>
//
// They are variables only because -X can set nothing else.
var (
	tower  = "v0.1.0-dev"
	commit = ""
)

// apiModule is the module whose version is the Kubernetes API Tower serves:
// k8s.io/api v0.X.Y carries the types of Kubernetes v1.X.Y.
const apiModule = "k8s.io/api"

// Info identifies a build.
type Info struct {
	Tower      string
	Commit     string
	Kubernetes string
}

// Get returns the version of this binary.
func Get() Info {
	return Info{Tower: tower, Commit: commit, Kubernetes: kubernetesVersion()}
}

// String is the one-line form `tower version` prints, e.g.
// "Tower v0.1.0 (Kubernetes v1.37.2 API)".
func (i Info) String() string {
	s := fmt.Sprintf("Tower %s (Kubernetes %s API)", i.Tower, i.Kubernetes)
	if i.Commit != "" {
		s += " commit " + i.Commit
	}
	return s
}

// kubernetesVersion derives the Kubernetes release from the k8s.io/api
// module linked into the binary, so it can never disagree with the types
// actually served.
func kubernetesVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == apiModule {
			return KubernetesFromAPIModule(dep.Version)
		}
	}
	return "unknown"
}

// KubernetesFromAPIModule maps a k8s.io/api module version (v0.37.2) to the
// Kubernetes release it belongs to (v1.37.2).
func KubernetesFromAPIModule(moduleVersion string) string {
	rest, ok := strings.CutPrefix(moduleVersion, "v0.")
	if !ok {
		return moduleVersion
	}
	return "v1." + rest
}
