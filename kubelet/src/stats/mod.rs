//! The stats provider (the Go kubelet's `pkg/kubelet/stats` with the parts
//! of cadvisor it needs): CPU, memory, pids and filesystem usage per
//! container, per pod and for the node, refreshed on an interval and kept in
//! memory for the kubelet API.
//!
//! SKELETON: filled in by the cgroups work (issue 5).
