//! Compiles the `.proto` files under `proto/` into Rust with no `protoc` binary: `protox` parses
//! them into a `FileDescriptorSet`, then `tonic-prost-build` generates messages, clients and
//! servers from that set into `OUT_DIR` (one file per proto package).

const PROTOS: &[&str] = &[
    "deviceplugin/v1beta1/api.proto",
    "podresources/v1/api.proto",
    "node/v1/node.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
