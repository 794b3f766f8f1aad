//! Benchmark: `terraform plan` and `terraform apply` of N `atrium_tenant`
//! against N built-in `terraform_data` (which needs no provider at all), in
//! the same run, alternating, medians over rounds; prints the ratios and the
//! provider's peak RSS.
//!
//!     scripts/bench.sh            # N=1000, 3 rounds
//!     scripts/bench.sh 200 5      # N=200, 5 rounds
//!
//! Targets (issue 9): plan ≤ 1.10×, apply ≤ 1.0×, provider RSS ≤ 12 MiB.

use std::time::Instant;

use atrium_acceptance::{BULK_TENANT_ATTRIBUTES, RegistryChoice, Workspace, bulk_tenants, provider_binary};

fn tenants(count: usize) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    atrium = {{ source = \"atrium-hosting/atrium\", version = \"~> 0.1\" }}\n  }}\n}}\n\nprovider \"atrium\" {{}}\n\n{}",
        bulk_tenants(count)
    )
}

fn data(count: usize) -> String {
    format!(
        "resource \"terraform_data\" \"bulk\" {{\n  count = {count}\n  input = {{\n  {BULK_TENANT_ATTRIBUTES}\n  }}\n}}\n"
    )
}

fn timed(workspace: &Workspace, arguments: &[&str], expected: i32) -> f64 {
    // terraform init (first command only) stays out of the measurement.
    workspace.init();
    let started = Instant::now();
    let run = workspace.terraform(arguments);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(run.code, expected, "terraform {arguments:?}\n{}\n{}", run.stdout, run.stderr);
    seconds
}

/// The largest peak RSS (KiB) that provider processes appended to `file`
/// since the last call; the file is emptied. A provider that wrote nothing,
/// or wrote something else than a number, fails the benchmark.
fn take_peak_kib(file: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|error| panic!("no provider reported its peak RSS in {}: {error}", file.display()));
    let peak = text
        .lines()
        .map(|line| line.trim().parse::<u64>().unwrap_or_else(|_| panic!("not a peak RSS in kB: {line:?}")))
        .max()
        .unwrap_or_else(|| panic!("no provider reported its peak RSS in {}", file.display()));
    std::fs::write(file, "").unwrap_or_else(|error| panic!("cannot empty {}: {error}", file.display()));
    peak
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(1000);
    let rounds = arguments.get(1).copied().unwrap_or(3).max(1);
    println!("provider: {}", provider_binary().display());
    println!("{count} resources, {rounds} rounds, alternating; timings in seconds\n");

    let atrium = Workspace::new("bench_atrium", RegistryChoice::Sqlite).await;
    atrium.write("main.tf", &tenants(count));
    let baseline = Workspace::new("bench_data", RegistryChoice::Sqlite).await;
    baseline.write("main.tf", &data(count));
    let rss_file = atrium.path().join("peak-rss.txt");

    let apply = ["apply", "-auto-approve", "-input=false"];
    let plan = ["plan", "-input=false", "-detailed-exitcode"];
    let destroy = ["destroy", "-auto-approve", "-input=false"];
    let (mut atrium_apply, mut atrium_plan, mut data_apply, mut data_plan) = (vec![], vec![], vec![], vec![]);
    let (mut atrium_update, mut data_update) = (vec![], vec![]);
    // The same resources with another display name: an update in place of every one.
    let renamed = |text: String| text.replace("Bulk customer", "Bulk client");
    let (mut apply_peak_kib, mut plan_peak_kib, mut destroy_peak_kib) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let mut run_atrium = || {
            // SAFETY: the benchmark is single-threaded; the variable is read by child processes only.
            unsafe { std::env::set_var("ATRIUM_PEAK_RSS_FILE", &rss_file) };
            atrium_apply.push(timed(&atrium, &apply, 0));
            apply_peak_kib = apply_peak_kib.max(take_peak_kib(&rss_file));
            atrium_plan.push(timed(&atrium, &plan, 0));
            plan_peak_kib = plan_peak_kib.max(take_peak_kib(&rss_file));
            atrium.write("main.tf", &renamed(tenants(count)));
            atrium_update.push(timed(&atrium, &apply, 0));
            atrium.write("main.tf", &tenants(count));
            timed(&atrium, &destroy, 0);
            destroy_peak_kib = destroy_peak_kib.max(take_peak_kib(&rss_file));
            unsafe { std::env::remove_var("ATRIUM_PEAK_RSS_FILE") };
        };
        let mut run_data = || {
            data_apply.push(timed(&baseline, &apply, 0));
            data_plan.push(timed(&baseline, &plan, 0));
            baseline.write("main.tf", &renamed(data(count)));
            data_update.push(timed(&baseline, &apply, 0));
            baseline.write("main.tf", &data(count));
            timed(&baseline, &destroy, 0);
        };
        if round % 2 == 0 {
            run_atrium();
            run_data();
        } else {
            run_data();
            run_atrium();
        }
        println!(
            "round {}: atrium apply {:.2} plan {:.2} update {:.2} | terraform_data apply {:.2} plan {:.2} update {:.2}",
            round + 1,
            atrium_apply[round],
            atrium_plan[round],
            atrium_update[round],
            data_apply[round],
            data_plan[round],
            data_update[round]
        );
    }
    let (aa, ap, da, dp) =
        (median(&mut atrium_apply), median(&mut atrium_plan), median(&mut data_apply), median(&mut data_plan));
    println!();
    println!(
        "median apply: atrium_tenant {aa:.2} s, terraform_data {da:.2} s, ratio {:.2}x (target <= 1.00x)",
        aa / da
    );
    println!(
        "median plan:  atrium_tenant {ap:.2} s, terraform_data {dp:.2} s, ratio {:.2}x (target <= 1.10x)",
        ap / dp
    );
    let (au, du) = (median(&mut atrium_update), median(&mut data_update));
    println!(
        "median update in place: atrium_tenant {au:.2} s, terraform_data {du:.2} s, ratio {:.2}x; atrium update / atrium create {:.2}x",
        au / du,
        au / aa
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = apply_peak_kib.max(plan_peak_kib).max(destroy_peak_kib);
    println!(
        "provider peak RSS: {:.1} MiB (target <= 12 MiB); apply {:.1}, plan {:.1}, update and destroy {:.1}",
        mib(peak),
        mib(apply_peak_kib),
        mib(plan_peak_kib),
        mib(destroy_peak_kib)
    );
}
