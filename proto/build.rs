//! Compiles the protos with protox, a pure-Rust protobuf compiler, so
//! building Berth needs no system `protoc`:
//!
//! - `proto/api.proto`: CRI runtime.v1, clients, servers and serde impls;
//! - `containerd/`: the slice of containerd's event API Berth subscribes
//!   to, clients and messages only.

use prost::Message;

/// containerd's files, relative to the `containerd` include directory.
const CONTAINERD_PROTOS: &[&str] = &[
    "services/events/v1/events.proto",
    "events/task.proto",
    "events/container.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["api.proto"], ["proto"])?;
    let descriptor_bytes = fds.encode_to_vec();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    // Canonical proto3 JSON (camelCase names, enum names, 64-bit integers as
    // strings, defaults emitted): the same JSON crictl prints with protojson.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .emit_fields()
        .build(&[".runtime.v1"])?;

    for file in CONTAINERD_PROTOS {
        println!("cargo:rerun-if-changed=containerd/{file}");
    }
    // google.protobuf.Any and Timestamp map to prost-types.
    let containerd = protox::compile(CONTAINERD_PROTOS, ["containerd"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(containerd)?;
    Ok(())
}
