//! `terraform-provider-atrium`: started by Terraform (or with `--debug` by a developer).

use std::process::ExitCode;
use std::sync::Arc;

use atrium_provider::plugin::{self, Mode, PluginError};
use atrium_provider::schema::ProviderSchemas;
use atrium_provider::server::AtriumProvider;

const USAGE: &str = "terraform-provider-atrium: the Terraform provider for Atrium.

This is a Terraform plugin: Terraform starts it. Use it from a Terraform
configuration with
    required_providers { atrium = { source = \"atrium-hosting/atrium\" } }

Options:
    --debug     serve for a debugger or a long-lived test run and print the
                TF_REATTACH_PROVIDERS value to attach Terraform to it
    --version   print the version";

fn main() -> ExitCode {
    limit_malloc_arenas();
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let mode = match arguments.first().map(String::as_str) {
        None => Mode::Managed,
        Some("--debug") => Mode::Debug,
        Some("--version") => {
            println!("terraform-provider-atrium {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("terraform-provider-atrium: unknown argument {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if matches!(mode, Mode::Managed) {
        let cookie = std::env::var(plugin::MAGIC_COOKIE_KEY).ok();
        let versions = std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok();
        if let Err(error) = plugin::check_handshake_environment(cookie.as_deref(), versions.as_deref()) {
            match error {
                PluginError::NotStartedByTerraform => eprintln!(
                    "This binary is a plugin. These are not meant to be executed directly.\n\
                     Terraform runs it for you: reference atrium-hosting/atrium in a configuration and run terraform plan.\n\
                     To debug it, run it with --debug and follow the instructions it prints."
                ),
                other => eprintln!("terraform-provider-atrium: {other}"),
            }
            return ExitCode::FAILURE;
        }
    }
    atrium_provider::logging::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("terraform-provider-atrium: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let schemas = match ProviderSchemas::build() {
        Ok(schemas) => Arc::new(schemas),
        Err(error) => {
            eprintln!("terraform-provider-atrium: {error}");
            return ExitCode::FAILURE;
        }
    };
    let provider = Arc::new(AtriumProvider::new(schemas));
    let result = runtime.block_on(plugin::serve(provider, mode));
    report_peak_memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("terraform-provider-atrium: {}", atrium_provider::diagnostics::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// One malloc arena instead of one per thread: the provider's work is small
/// and short, and per-thread arenas roughly double its resident memory.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// For benchmarks: appends this process's peak resident memory (kB) to the
/// file named by `ATRIUM_PEAK_RSS_FILE`.
fn report_peak_memory() {
    let Ok(path) = std::env::var("ATRIUM_PEAK_RSS_FILE") else { return };
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return };
    if let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:")) {
        let kilobytes = line.split_whitespace().nth(1).unwrap_or("0");
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{kilobytes}");
        }
    }
}
