//! Ctrl-C safety: SIGINT to Terraform's whole process group in the middle of
//! an apply of 200 tenants leaves registry and state consistent, and the next
//! apply converges with no orphan and no duplicate.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use atrium_acceptance::{RegistryChoice, Workspace, bulk_tenants, provider_example};

const TENANTS: usize = 200;

/// Tenant names in the state, by their `name` attribute.
fn state_names(workspace: &Workspace) -> BTreeSet<String> {
    let state = workspace.state_json();
    state["values"]["root_module"]["resources"]
        .as_array()
        .map(|resources| resources.iter().filter_map(|r| r["values"]["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn registry_names(workspace: &Workspace) -> BTreeSet<String> {
    let registry = workspace.registry().await;
    let names = registry.list_tenants().await.unwrap().into_iter().map(|r| r.spec.name.to_string()).collect();
    registry.close().await;
    names
}

async fn interrupted_apply_converges(registry_choice: RegistryChoice, test_name: &str) {
    let workspace = Workspace::new(test_name, registry_choice).await;
    workspace.write("provider.tf", &provider_example());
    workspace.write("main.tf", &bulk_tenants(TENANTS));
    let registry = workspace.registry().await;

    let mut command = workspace.command(&["apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=4"]);
    // Its own process group, as an interactive shell gives it: Ctrl-C reaches
    // Terraform and every provider process it started.
    // Output goes to files: a pipe nobody reads fills up and stalls Terraform.
    let stdout_file = std::fs::File::create(workspace.path().join("apply.stdout")).unwrap();
    let stderr_file = std::fs::File::create(workspace.path().join("apply.stderr")).unwrap();
    command.process_group(0).stdout(Stdio::from(stdout_file)).stderr(Stdio::from(stderr_file));
    let mut child = command.spawn().expect("start terraform apply");
    let process_group = child.id() as i32;

    let started = Instant::now();
    loop {
        let created = registry.count_tenants().await.unwrap();
        if created >= 20 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the apply made only {created} tenants in 2 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    let signalled = unsafe { libc::kill(-process_group, libc::SIGINT) };
    assert_eq!(signalled, 0, "SIGINT to the process group");
    let status = child.wait().expect("wait for terraform");
    let stdout = workspace.read("apply.stdout");
    let stderr = workspace.read("apply.stderr");
    assert_ne!(status.code(), Some(0), "an interrupted apply reports failure\n{stdout}\n{stderr}");
    assert!(stdout.contains("Interrupt received") || stderr.contains("Interrupt received"), "{stdout}\n{stderr}");

    // Consistent right after the interruption: every tenant made is in the state.
    let in_registry = registry_names(&workspace).await;
    let in_state = state_names(&workspace);
    eprintln!("{test_name}: interrupted with {} of {TENANTS} tenants made", in_registry.len());
    assert!(in_registry.len() < TENANTS, "the interrupt landed after the apply finished; nothing was tested");
    assert_eq!(in_registry, in_state, "registry and state disagree after Ctrl-C\n{stderr}");

    // The next apply converges: all tenants, each once, all in state, plan empty.
    workspace.apply();
    let in_registry = registry_names(&workspace).await;
    assert_eq!(in_registry.len(), TENANTS);
    assert_eq!(in_registry, state_names(&workspace));
    workspace.plan(false).expect_code(0, "plan after the converging apply");
}

#[tokio::test]
async fn ctrl_c_during_apply_of_200_tenants_leaves_registry_and_state_consistent_on_sqlite() {
    interrupted_apply_converges(RegistryChoice::Sqlite, "interrupt_sqlite").await;
}

#[tokio::test]
async fn ctrl_c_during_apply_of_200_tenants_leaves_registry_and_state_consistent_on_postgres() {
    interrupted_apply_converges(RegistryChoice::Postgres, "interrupt_postgres").await;
}
