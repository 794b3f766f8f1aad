//! `atrium`: plan and apply Atrium configurations from the command line.

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    let code = runtime.block_on(atrium_engine::cli::run(std::env::args().collect()));
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
