//! Benchmark: the `atrium` CLI against `terraform` with the provider, on
//! the same tenants (the same resource blocks), in the same run:
//!
//! - `plan` of N tenants with an empty registry (default N = 10,000);
//! - `apply` of M tenants (default M = 1,000), then a no-op `plan` of them,
//!   and the no-op `plan` of N existing tenants (the CLI's N applied by the
//!   CLI, Terraform's by Terraform);
//!
//! with each front door's wall time, their ratio, and the CLI's peak RSS.
//!
//!     scripts/bench.sh cli [N] [M]
//!
//! Targets (issue 11): plan of 10,000 < 1 s and >= 20x faster than
//! Terraform's, empty or no-op; apply of 1,000 >= 5x faster. With the
//! defaults it takes about half an hour, most of it `terraform apply` of
//! 10,000 tenants (which the no-op plan of 10,000 needs).

use std::process::{Command, Stdio};
use std::time::Instant;

use atrium_acceptance::{RegistryChoice, Workspace, atrium_binary, bulk_tenants, provider_binary};

/// Wall seconds, peak RSS (KiB), exit code and output of a command run to its end.
// The child is waited for with wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measured(mut command: Command) -> (f64, u64, i32, String) {
    use std::io::Read as _;
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the command");
    let pid = i32::try_from(child.id()).expect("pid");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for the child started here (the
    // Child is never waited on otherwise).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 on the command");
    let output = format!("{}\n{}", out.join().expect("stdout reader"), err.join().expect("stderr reader"));
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (seconds, u64::try_from(usage.ru_maxrss).unwrap_or(0), code, output)
}

fn atrium(workspace: &Workspace, arguments: &[&str], expected: i32) -> (f64, u64) {
    let (seconds, peak, code, output) = measured(workspace.atrium_command(arguments));
    assert_eq!(code, expected, "atrium {arguments:?}\n{output}");
    (seconds, peak)
}

fn terraform(workspace: &Workspace, arguments: &[&str], expected: i32) -> f64 {
    workspace.init();
    let mut full = arguments.to_vec();
    full.push("-no-color");
    let (seconds, _, code, output) = measured(workspace.command(&full));
    assert_eq!(code, expected, "terraform {arguments:?}\n{output}");
    seconds
}

const PROVIDER: &str = "terraform {\n  required_providers {\n    atrium = { source = \"atrium-hosting/atrium\", version = \"~> 0.1\" }\n  }\n}\n\nprovider \"atrium\" {}\n\n";

struct Pair {
    terraform: Workspace,
    cli: Workspace,
}

impl Pair {
    async fn new(name: &str, count: usize) -> Pair {
        let terraform = Workspace::new(&format!("bench_tf_{name}"), RegistryChoice::Sqlite).await;
        terraform.write("main.tf", &format!("{PROVIDER}{}", bulk_tenants(count)));
        let cli = Workspace::new(&format!("bench_cli_{name}"), RegistryChoice::Sqlite).await;
        cli.write("atrium.hcl", "atrium {\n  owner = \"bench\"\n}\n");
        cli.write("main.tf", &bulk_tenants(count));
        Pair { terraform, cli }
    }
}

fn ratio(line: &str, terraform: f64, cli: f64, target: &str) {
    println!(
        "{line}: terraform {terraform:.2} s, atrium {cli:.3} s, atrium is {:.1}x faster ({target})",
        terraform / cli
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(10_000);
    let applied = arguments.get(1).copied().unwrap_or(1_000);
    println!("provider: {}\natrium: {}", provider_binary().display(), atrium_binary().display());
    println!("plan of {count} tenants, apply of {applied}; wall seconds; one run each\n");
    let plan = ["plan", "-input=false", "-detailed-exitcode"];
    let apply = ["apply", "-auto-approve", "-input=false"];
    let mib = |kib: u64| kib as f64 / 1024.0;

    let large = Pair::new("large", count).await;
    let (cli_plan, cli_plan_kib) = atrium(&large.cli, &["plan"], 2);
    let terraform_plan = terraform(&large.terraform, &plan, 2);
    ratio(&format!("plan of {count} new tenants"), terraform_plan, cli_plan, "target >= 20x, atrium < 1 s");

    let small = Pair::new("small", applied).await;
    let (cli_apply, cli_apply_kib) = atrium(&small.cli, &["apply", "-auto-approve"], 0);
    let terraform_apply = terraform(&small.terraform, &apply, 0);
    ratio(&format!("apply of {applied} tenants"), terraform_apply, cli_apply, "target >= 5x");
    let (cli_noop_small, _) = atrium(&small.cli, &["plan"], 0);
    let terraform_noop_small = terraform(&small.terraform, &plan, 0);
    ratio(&format!("no-op plan of {applied} tenants"), terraform_noop_small, cli_noop_small, "");

    let (cli_apply_large, _) = atrium(&large.cli, &["apply", "-auto-approve"], 0);
    let terraform_apply_large = terraform(&large.terraform, &apply, 0);
    ratio(&format!("apply of {count} tenants"), terraform_apply_large, cli_apply_large, "");
    let (cli_noop, cli_noop_kib) = atrium(&large.cli, &["plan"], 0);
    let terraform_noop = terraform(&large.terraform, &plan, 0);
    ratio(&format!("no-op plan of {count} tenants"), terraform_noop, cli_noop, "target >= 20x");
    println!(
        "\natrium peak RSS: plan of {count} new {:.1} MiB, no-op plan of {count} {:.1} MiB, apply of {applied} {:.1} MiB",
        mib(cli_plan_kib),
        mib(cli_noop_kib),
        mib(cli_apply_kib)
    );
}
