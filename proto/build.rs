//! Compiles `proto/api.proto` (CRI runtime.v1) with protox, a pure-Rust
//! protobuf compiler, so building Berth needs no system `protoc`.

use prost::Message;

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
    Ok(())
}
