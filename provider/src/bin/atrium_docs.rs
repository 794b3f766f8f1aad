//! `atrium-docs`: writes `docs/` from the provider's schemas and `examples/`.
//!
//!     cargo run -p atrium-provider --bin atrium-docs            # regenerate
//!     cargo run -p atrium-provider --bin atrium-docs -- --check  # fail if docs/ is stale

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let schemas = match atrium_provider::schema::ProviderSchemas::build() {
        Ok(schemas) => schemas,
        Err(error) => {
            eprintln!("atrium-docs: {error}");
            return ExitCode::FAILURE;
        }
    };
    let examples_root = root.join("examples");
    let reader = |relative: &str| {
        let path = examples_root.join(relative);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let files = match atrium_provider::docs::render_all(&schemas, &reader) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("atrium-docs: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = Vec::new();
    for file in files {
        let path = root.join("docs").join(&file.path);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == file.content {
            continue;
        }
        if check {
            stale.push(file.path);
            continue;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(error) = std::fs::write(&path, &file.content) {
            eprintln!("atrium-docs: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("atrium-docs: wrote docs/{}", file.path);
    }
    if !stale.is_empty() {
        eprintln!(
            "atrium-docs: docs/ is out of date ({}); run `cargo run -p atrium-provider --bin atrium-docs` and commit",
            stale.join(", ")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
