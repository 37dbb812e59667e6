//go:build tools

// The commands this module builds, so `go mod tidy` keeps their dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	// The Go kubelet, for benchmarks side by side with berth.
	_ "k8s.io/kubernetes/cmd/kubelet"

	// etcd 3.6, the server kube-apiserver 1.36 is tested with (Debian 12 ships 3.4).
	_ "go.etcd.io/etcd/server/v3"
)
