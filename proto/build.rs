//! Compiles `noroshi/v1/*.proto` with the pure-Rust `protox` compiler, so no system
//! `protoc` is needed, and keeps the file descriptor set for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "noroshi/v1/common.proto",
    "noroshi/v1/envelope.proto",
    "noroshi/v1/facility_events.proto",
    "noroshi/v1/case_events.proto",
    "noroshi/v1/placement_events.proto",
    "noroshi/v1/consult_events.proto",
    "noroshi/v1/alert_events.proto",
    "noroshi/v1/commands.proto",
    "noroshi/v1/facility_service.proto",
    "noroshi/v1/case_service.proto",
    "noroshi/v1/placement_service.proto",
    "noroshi/v1/consult_service.proto",
    "noroshi/v1/alert_service.proto",
    "noroshi/v1/view_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=noroshi");
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("noroshi_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    let mut config = prost_build::Config::new();
    // Event types are stored as the protobuf full name (`prost::Name::full_name`).
    config.enable_type_names();
    generate(config, descriptors)
}

/// Messages and, with the `grpc` feature, the service stubs (servers and clients).
#[cfg(feature = "grpc")]
fn generate(
    config: prost_build::Config,
    descriptors: prost_types::FileDescriptorSet,
) -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}

/// Messages only: crates that store or read them (codec, projections) build no tonic.
#[cfg(not(feature = "grpc"))]
fn generate(
    mut config: prost_build::Config,
    descriptors: prost_types::FileDescriptorSet,
) -> Result<(), Box<dyn std::error::Error>> {
    config.compile_fds(descriptors)?;
    Ok(())
}
