//! Generates the tfplugin6 and go-plugin gRPC server code from `proto/`.

fn main() {
    if std::env::var_os("PROTOC").is_none() && which_protoc().is_none() {
        println!(
            "cargo::error=protoc was not found: install Debian's protobuf-compiler \
             (scripts/install-deps.sh does) or set PROTOC to its path"
        );
        return;
    }
    // Relative relocations packed (DT_RELR, glibc 2.36+): the dynamic loader
    // reads a few KiB instead of the 450 KiB table of a PIE this size, and
    // that table never becomes part of the provider's resident memory.
    println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // scripts/provider-dist.sh links the provider with this list of its hot
    // functions (a linker argument Cargo does not look into): a new list
    // must relink it.
    println!("cargo::rerun-if-changed=symbol-order.txt");
    let protos = ["../proto/tfplugin6.proto", "../proto/go_plugin.proto"];
    for proto in protos {
        println!("cargo::rerun-if-changed={proto}");
    }
    if let Err(error) = tonic_prost_build::configure().build_client(false).compile_protos(&protos, &["../proto"]) {
        println!("cargo::error=compiling proto/: {error}");
    }
}

fn which_protoc() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("protoc")).find(|candidate| candidate.is_file())
}
