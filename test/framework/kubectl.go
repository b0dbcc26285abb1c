package framework

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// kubectlFatal carries kubectl's fatal exit out of its command tree.
type kubectlFatal struct {
	msg  string
	code int
}

// RunKubectl runs kubectl's own command tree, in process, with args
// against the cluster of kubeconfig and returns what it printed (stdout
// and stderr together). A fatal exit becomes an error naming its code.
// stdin may be nil.
func RunKubectl(kubeconfig string, stdin io.Reader, args ...string) (output string, err error) {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out bytes.Buffer
	streams := genericiooptions.IOStreams{In: stdin, Out: &out, ErrOut: &out}
	configFlags := genericclioptions.NewConfigFlags(true).WithDiscoveryBurst(300).WithDiscoveryQPS(50)
	cmdutil.BehaviorOnFatal(func(msg string, code int) { panic(kubectlFatal{msg, code}) })
	defer cmdutil.DefaultBehaviorOnFatal()
	defer func() {
		if r := recover(); r != nil {
			fatal, ok := r.(kubectlFatal)
			if !ok {
				panic(r)
			}
			output, err = out.String()+fatal.msg, fmt.Errorf("exit code %d", fatal.code)
		}
	}()
	cmd := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
		Arguments:   append([]string{"kubectl"}, args...),
		ConfigFlags: configFlags,
		IOStreams:   streams,
	})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err = cmd.Execute()
	return out.String(), err
}
