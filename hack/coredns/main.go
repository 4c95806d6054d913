// CoreDNS for the dev cluster's real node, with only the plugins its Corefile uses (hack/realnode.py: corefile).
// CoreDNS's own main compiles in every plugin it ships (cloud DNS providers with their SDKs, etcd, dnstap, ...);
// this one is the same server and the same plugin code, built in a fraction of the time on a cold machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// the order a request passes through them: CoreDNS's own (core/dnsserver/zdirectives.go) restricted to these
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes", "forward"}
}

func main() {
	coremain.Run()
}
