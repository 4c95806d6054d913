// The dev cluster's pod sandbox ("pause") program: it holds a pod's namespaces open, reaps the children it
// inherits and exits on SIGINT or SIGTERM. Built by hack/build-node.sh and packaged FROM scratch, because the
// usual pause image's registry is unreachable from the development machines.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
