//! Compiles `proto/orders/v1/orders.proto` with protox (pure Rust), so a bare
//! `cargo build` needs no system `protoc`.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../../proto");
    let proto_file = proto_root.join("orders/v1/orders.proto");
    println!("cargo:rerun-if-changed={}", proto_file.display());

    let descriptors = protox::compile([&proto_file], [&proto_root])?;
    let descriptor_path = PathBuf::from(env::var("OUT_DIR")?).join("orders_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
