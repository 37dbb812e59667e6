//! The Kubernetes Container Runtime Interface, version `runtime.v1`.
//!
//! `proto/api.proto` is wire-identical to upstream `k8s.io/cri-api`
//! (Kubernetes 1.36): the same package, services, messages, field names,
//! numbers and types. Its comments are Berth's own.
//!
//! Every message also implements serde with the canonical proto3 JSON
//! mapping, which is what crictl prints for `-o json`.

/// Generated messages and the `RuntimeService` / `ImageService` stubs.
#[allow(clippy::all, clippy::unwrap_used, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
    include!(concat!(env!("OUT_DIR"), "/runtime.v1.serde.rs"));
}

pub use v1::*;
