// argocd-application-controller of Argo CD v3.2.11, as upstream's cmd/main.go starts it when its
// binary is named argocd-application-controller: the same klog set-up, then the command constructor of
// github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands. No code of ours runs.
package main

import (
	"os"

	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	// Make sure klog uses the configured log level and format (as upstream's main).
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	if err := appcontroller.NewCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
