//! The Kubernetes Container Runtime Interface, version `runtime.v1`.
//!
//! `proto/api.proto` is wire-identical to upstream `k8s.io/cri-api`
//! (Kubernetes 1.36): the same package, services, messages, field names,
//! numbers and types. Its comments are Berth's own.
//!
//! Every message also implements serde with the canonical proto3 JSON
//! mapping, which is what crictl prints for `-o json`.
//!
//! [`containerd`] holds the part of containerd's own event API that Berth
//! uses (the `Events/Subscribe` stream and the task and container event
//! messages), as a client only.

/// Generated messages and the `RuntimeService` / `ImageService` stubs.
#[allow(clippy::all, clippy::unwrap_used, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
    include!(concat!(env!("OUT_DIR"), "/runtime.v1.serde.rs"));
}

pub use v1::*;

/// containerd's event API (containerd 1.6 wire format), client side only.
/// The module tree follows the proto packages.
#[allow(clippy::all, clippy::unwrap_used, missing_docs, rust_2018_idioms)]
pub mod containerd {
    /// `containerd.events`: the event messages carried in an envelope's Any.
    pub mod events {
        tonic::include_proto!("containerd.events");
    }

    pub mod services {
        pub mod events {
            /// `containerd.services.events.v1`: the `Events` service client,
            /// `SubscribeRequest` and `Envelope`.
            pub mod v1 {
                tonic::include_proto!("containerd.services.events.v1");
            }
        }
    }
}

// The runtime the generated code is built on, so users decode `Any`
// payloads and timestamps with the same versions.
pub use prost;
pub use prost_types;
