//! Generates the saved plan's message types from `proto/atrium_plan.proto`
//! (with protoc: Debian's protobuf-compiler, which scripts/install-deps.sh
//! installs, or the one PROTOC names).

fn main() {
    let proto = "../proto/atrium_plan.proto";
    println!("cargo::rerun-if-changed={proto}");
    if let Err(error) = prost_build::compile_protos(&[proto], &["../proto"]) {
        println!("cargo::error=compiling {proto} (is protoc installed? scripts/install-deps.sh installs it): {error}");
    }
}
