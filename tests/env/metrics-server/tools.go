//go:build tools

// The command this module builds, so `go mod tidy` keeps its dependencies.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
