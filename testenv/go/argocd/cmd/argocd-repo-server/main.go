// argocd-repo-server of Argo CD v3.2.11, as upstream's cmd/main.go starts it when its
// binary is named argocd-repo-server: the same klog set-up, then the command constructor of
// github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands. No code of ours runs.
package main

import (
	"os"

	"k8s.io/klog/v2"

	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	// Make sure klog uses the configured log level and format (as upstream's main).
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	if err := reposerver.NewCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
