// Command pause is the sandbox container of prebake's real-join test (the
// role of registry.k8s.io/pause): it holds a pod's namespaces, reaps the
// orphans it inherits as PID 1, and exits when told to stop. prebake builds
// it into a one-layer image (hack/real/images/pause) so the test needs no
// registry outside the machine.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
