//! The command line: Terraform's commands, flags and exit codes.
//!
//! Flags are written as Terraform writes them (`-chdir=DIR`, `-auto-approve`,
//! `-var name=value`); the GNU spelling (`--chdir`) works too.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio::sync::watch;

use super::apply::{self, Outcome};
use super::config::{self, Configuration, Variables};
use super::diagnostic::Diagnostic;
use super::plan::{self, Mode, Plan};
use super::progress::Progress;
use super::saved;
use super::session::Session;
use crate::backends::error_chain;
use crate::config::PlatformConfigDocument;
use crate::model::ownership::{ObjectKind, Owner};
use crate::platform::{Environment, Platform};

/// Plan and apply Atrium configurations: tenants, app instances, domains and
/// support plans, with the registry as state.
#[derive(Debug, Parser)]
#[command(name = "atrium", version, disable_help_subcommand = true)]
pub struct Cli {
    /// Switch to DIR before doing anything else (like terraform -chdir).
    #[arg(long, value_name = "DIR")]
    chdir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct VarArgs {
    /// Set a variable: -var name=value (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    #[command(flatten)]
    vars: VarArgs,
    /// Apply without asking.
    #[arg(long)]
    auto_approve: bool,
    /// How many objects to change at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    parallelism: u16,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the configuration: syntax, references, attributes.
    Validate {
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Show what apply would change. Exit code 0: no changes, 2: changes, 1: error.
    Plan {
        #[command(flatten)]
        vars: VarArgs,
        /// Plan to destroy every object of this owner.
        #[arg(long)]
        destroy: bool,
        /// Save the plan to FILE, for atrium apply FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the plan as JSON (see docs/cli-json.md).
        #[arg(long)]
        json: bool,
    },
    /// Plan, ask, then apply; or apply a saved plan (FILE) unless the registry changed since.
    Apply {
        #[command(flatten)]
        arguments: ApplyArgs,
        /// A plan saved by atrium plan -out FILE.
        #[arg(value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Print a saved plan.
    Show {
        /// Print it as JSON (see docs/cli-json.md).
        #[arg(long)]
        json: bool,
        #[arg(value_name = "FILE")]
        plan: PathBuf,
    },
    /// Destroy every object of this owner.
    Destroy(ApplyArgs),
    /// Make an existing object that no configuration owns this owner's, as ADDRESS.
    Import {
        #[command(flatten)]
        vars: VarArgs,
        /// The resource's address in the configuration, e.g. 'atrium_tenant.customer["acme"]'.
        address: String,
        /// The object's id: a tenant's name, an instance's TENANT/NAME, a domain's host name.
        id: String,
    },
    /// Back up an app instance now: its database and volumes, into its repository.
    Backup {
        #[command(flatten)]
        vars: VarArgs,
        /// The app instance, TENANT/NAME.
        instance: String,
    },
    /// List an app instance's backup snapshots, oldest first.
    Snapshots {
        #[command(flatten)]
        vars: VarArgs,
        /// Print them as JSON: [{"id", "time"}].
        #[arg(long)]
        json: bool,
        /// The app instance, TENANT/NAME.
        instance: String,
    },
    /// Restore an app instance's data from a snapshot, in place (a backup of its data is taken first).
    Restore {
        #[command(flatten)]
        vars: VarArgs,
        /// Restore without asking.
        #[arg(long)]
        auto_approve: bool,
        /// Restore a snapshot of another instance of the same tenant and app (TENANT/OTHER, live or
        /// destroyed with its data kept) instead of its own: a clone.
        #[arg(long)]
        from: Option<String>,
        /// Read the snapshot from the off-site copy of this target's backups (its offsite_backups
        /// store), e.g. when that target is lost.
        #[arg(long, value_name = "TARGET")]
        offsite_of: Option<String>,
        /// The app instance, TENANT/NAME.
        instance: String,
        /// A snapshot id (or its first 8 or more hex digits), or `latest`.
        snapshot: String,
    },
    /// Restore the latest snapshot of app instances into scratch instances, check that each app turns
    /// healthy on it, record the result (the instance's `latest_restore_test`) and remove the scratch
    /// instances. Run it from a timer or cron job to test restores on a schedule.
    RestoreTest {
        #[command(flatten)]
        vars: VarArgs,
        /// The app instances, TENANT/NAME; none: every instance of this owner that takes backups.
        instances: Vec<String>,
    },
    /// List the data destroyed app instances left on the targets (delete_data_on_destroy = false).
    Kept {
        #[command(flatten)]
        vars: VarArgs,
        /// Print it as JSON: [{"instance", "target", "owner", "volumes", "backups", "created_at"}].
        #[arg(long)]
        json: bool,
    },
    /// Delete the data a destroyed app instance left on the targets.
    Purge {
        #[command(flatten)]
        vars: VarArgs,
        /// Delete without asking.
        #[arg(long)]
        auto_approve: bool,
        /// The destroyed app instance, TENANT/NAME.
        instance: String,
    },
    /// Inspect the objects this owner manages.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// List this owner's objects by address.
    List {
        #[command(flatten)]
        vars: VarArgs,
    },
}

/// Terraform spells long flags with one dash (`-chdir=DIR`); clap wants two.
fn normalized(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen_separator = false;
    args.into_iter()
        .enumerate()
        .map(|(index, arg)| {
            if arg == "--" {
                seen_separator = true;
            }
            let single_dash_long = arg.len() > 2
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic());
            if index > 0 && !seen_separator && single_dash_long { format!("-{arg}") } else { arg }
        })
        .collect()
}

fn variables(vars: &VarArgs) -> Result<Variables, Diagnostic> {
    vars.vars
        .iter()
        .map(|var| {
            var.split_once('=')
                .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
                .ok_or_else(|| Diagnostic::new("Invalid -var option", format!("{var:?}: write -var name=value"), None))
        })
        .collect()
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("\n{diagnostic}");
    }
}

/// The configuration in the working directory, and its `atrium` block's settings.
fn load(vars: &VarArgs) -> Result<(Configuration, PlatformConfigDocument, String), Vec<Diagnostic>> {
    let variables = variables(vars).map_err(|d| vec![d])?;
    let configuration = config::load(std::path::Path::new("."), &variables).map_err(|d| vec![d])?;
    if configuration.settings.is_null() {
        return Err(vec![Diagnostic::new(
            "No atrium block",
            "the configuration needs an atrium block with at least owner = \"NAME\" (the name under which the CLI owns what it creates); put it in a .hcl file so Terraform does not read it",
            None,
        )]);
    }
    let mut settings = configuration.settings.clone();
    let owner = settings.get("owner").and_then(|owner| owner.as_str()).map(str::to_owned);
    let Some(owner) = owner.filter(|owner| !owner.trim().is_empty()) else {
        return Err(vec![Diagnostic::new(
            "Missing owner",
            "set owner = \"NAME\" in the atrium block: the CLI's objects are recorded in the registry under it, and a plan only touches its owner's objects",
            configuration.settings_position.clone(),
        )]);
    };
    if let Some(object) = settings.as_object_mut() {
        object.remove("owner");
    }
    let document: PlatformConfigDocument = serde_json::from_value(settings).map_err(|error| {
        vec![Diagnostic::new("Invalid atrium block", error.to_string(), configuration.settings_position.clone())]
    })?;
    Ok((configuration, document, owner))
}

/// Sets up the platform and the session (after Ctrl-C handling is in place).
async fn session(
    document: &PlatformConfigDocument,
    owner: &str,
    cancelled: watch::Receiver<bool>,
    position: Option<super::diagnostic::Position>,
) -> Result<Session, Vec<Diagnostic>> {
    let platform = Platform::connect(document, &Environment::of_process()).await.map_err(|errors| {
        errors
            .iter()
            .map(|error| {
                let detail = if error.attribute.steps.is_empty() {
                    error.detail.clone()
                } else {
                    format!("{}: {}", error.attribute, error.detail)
                };
                Diagnostic::new(error.summary.clone(), detail, position.clone())
            })
            .collect::<Vec<_>>()
    })?;
    Ok(Session::new(platform, Owner::atrium(owner), cancelled))
}

/// The configuration's platform and owner, for a command that needs no plan.
async fn open_session(vars: &VarArgs) -> Result<Session, Vec<Diagnostic>> {
    let (configuration, document, owner) = load(vars)?;
    session(&document, &owner, handle_interrupts(), configuration.settings_position.clone()).await
}

/// The first Ctrl-C asks the run to stop after the steps in flight; the second stops at once.
fn handle_interrupts() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "\nInterrupt received. Finishing the changes in flight; nothing new starts. Press Ctrl-C again to stop at once (the next atrium apply converges)."
        );
        let _ = sender.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nTwo interrupts received. Stopping now; run atrium apply again to finish.");
            std::process::exit(130);
        }
    });
    receiver
}

fn confirmed(question: &str) -> bool {
    print!("\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer.trim() == "yes"
}

fn report(outcome: &Outcome, what: &str) -> i32 {
    print_diagnostics(&outcome.warnings);
    print_diagnostics(&outcome.failures);
    if outcome.interrupted {
        eprintln!(
            "\nInterrupted: {} change(s) were not started. The registry is consistent; run atrium apply again to finish.",
            outcome.not_attempted
        );
    } else if outcome.not_attempted > 0 {
        eprintln!(
            "\n{} change(s) were not attempted because changes they depend on failed. Fix the errors above and run atrium apply again.",
            outcome.not_attempted
        );
    }
    if outcome.failures.is_empty() && !outcome.interrupted {
        println!("\n{what} complete! Resources: {}", outcome.summary());
        0
    } else {
        println!("\n{what} stopped. Resources: {}", outcome.summary());
        1
    }
}

fn print_plan(plan: &Plan) {
    print_diagnostics(&plan.warnings);
    if plan.has_changes() {
        println!("Atrium will perform the following actions (owner {:?}):\n", plan.owner);
        println!("{}", plan.render());
    } else {
        println!("No changes. Your infrastructure matches the configuration.");
    }
}

async fn run_command(command: Command) -> Result<i32, Vec<Diagnostic>> {
    match command {
        Command::Validate { vars } => {
            let (configuration, document, _) = load(&vars)?;
            let mut errors = plan::validate(&configuration);
            errors.extend(document.validate().iter().map(|error| {
                Diagnostic::new(
                    error.summary.clone(),
                    format!("{}: {}", error.attribute, error.detail),
                    configuration.settings_position.clone(),
                )
            }));
            if !errors.is_empty() {
                return Err(errors);
            }
            println!("Success! The configuration is valid ({} resources).", configuration.resources.len());
            Ok(0)
        }
        Command::Plan { vars, destroy, out, json } => {
            let (configuration, document, owner) = load(&vars)?;
            let session =
                session(&document, &owner, handle_interrupts(), configuration.settings_position.clone()).await?;
            let mode = if destroy { Mode::Destroy } else { Mode::Normal };
            let plan = plan::plan(&configuration, &session, mode, &Progress::new()).await?;
            let serial = saved::registry_serial(&session, &objects_of(&plan)).await.map_err(registry_error)?;
            if json {
                println!("{}", super::json::plan_json(&plan, &serial, destroy));
            } else {
                print_plan(&plan);
            }
            if let Some(out) = out {
                let variables = variables(&vars)
                    .map_err(|d| vec![d])?
                    .into_iter()
                    .filter(|(name, _)| !configuration.sensitive_variables.contains(name))
                    .collect();
                let message = saved::to_message(&plan, &serial, destroy, variables);
                saved::write(&out, &message)
                    .map_err(|detail| vec![Diagnostic::new("Cannot save the plan", detail, None)])?;
                if !json {
                    println!(
                        "\nSaved the plan to: {}\n\nTo perform exactly these actions, run: atrium apply {}",
                        out.display(),
                        out.display()
                    );
                }
            }
            session.platform.registry.close().await;
            Ok(if plan.has_changes() { 2 } else { 0 })
        }
        Command::Show { json, plan: path } => {
            let unreadable = |detail: String| vec![Diagnostic::new("Cannot read the saved plan", detail, None)];
            let message = saved::read(&path).map_err(unreadable)?;
            let plan = saved::from_message(&message).map_err(unreadable)?;
            if json {
                println!("{}", super::json::plan_json(&plan, &message.registry_serial, message.destroy));
            } else {
                print_plan(&plan);
            }
            Ok(0)
        }
        Command::Apply { arguments, plan: Some(path) } => run_saved(&arguments, &path).await,
        Command::Apply { arguments, plan: None } => run_apply(&arguments, Mode::Normal).await,
        Command::Destroy(arguments) => run_apply(&arguments, Mode::Destroy).await,
        Command::Import { vars, address, id } => {
            let (configuration, document, owner) = load(&vars)?;
            let session =
                session(&document, &owner, handle_interrupts(), configuration.settings_position.clone()).await?;
            let result = import(&configuration, &session, &address, &id).await;
            session.platform.registry.close().await;
            result.map(|message| {
                println!("{message}");
                0
            })
        }
        Command::Backup { vars, instance } => {
            let id = super::backups::instance_id(&instance)?;
            let session = open_session(&vars).await?;
            let result = super::backups::backup(&session, &id).await;
            session.platform.registry.close().await;
            result
        }
        Command::Snapshots { vars, json, instance } => {
            let id = super::backups::instance_id(&instance)?;
            let session = open_session(&vars).await?;
            let result = super::backups::snapshots(&session, &id, json).await;
            session.platform.registry.close().await;
            result
        }
        Command::Restore { vars, auto_approve, from, offsite_of, instance, snapshot } => {
            let id = super::backups::instance_id(&instance)?;
            let from = from.as_deref().map(super::backups::instance_id).transpose()?;
            if !crate::model::backup::is_snapshot_reference(&snapshot) {
                return Err(vec![Diagnostic::new(
                    "Invalid snapshot",
                    format!(
                        "{snapshot:?}: give `latest` or a snapshot id (8 to 64 lowercase hex digits, as atrium snapshots lists them)"
                    ),
                    None,
                )]);
            }
            let session = open_session(&vars).await?;
            let result = super::backups::restore(
                &session,
                &id,
                from.as_ref(),
                offsite_of.as_deref(),
                &snapshot,
                auto_approve,
                confirmed,
            )
            .await;
            session.platform.registry.close().await;
            result
        }
        Command::RestoreTest { vars, instances } => {
            let ids = instances.iter().map(|text| super::backups::instance_id(text)).collect::<Result<Vec<_>, _>>()?;
            let session = open_session(&vars).await?;
            let result = super::backups::restore_test(&session, &ids).await;
            session.platform.registry.close().await;
            result
        }
        Command::Kept { vars, json } => {
            let session = open_session(&vars).await?;
            let result = super::kept::list(&session, json).await;
            session.platform.registry.close().await;
            result
        }
        Command::Purge { vars, auto_approve, instance } => {
            let id = super::backups::instance_id(&instance)?;
            let session = open_session(&vars).await?;
            let result = super::kept::purge(&session, &id, auto_approve, confirmed).await;
            session.platform.registry.close().await;
            result
        }
        Command::State { command: StateCommand::List { vars } } => {
            let (configuration, document, owner) = load(&vars)?;
            let session =
                session(&document, &owner, handle_interrupts(), configuration.settings_position.clone()).await?;
            let plan = plan::plan(&configuration, &session, Mode::Destroy, &Progress::new()).await?;
            let mut addresses: Vec<&str> =
                plan.changes.iter().filter(|c| c.before.is_some()).map(|c| c.address.as_str()).collect();
            addresses.sort_unstable();
            for address in addresses {
                println!("{address}");
            }
            session.platform.registry.close().await;
            Ok(0)
        }
    }
}

/// Makes the object `id` this owner's as `address`: only an object that
/// exists and no configuration owns (another owner's is refused).
async fn import(
    configuration: &Configuration,
    session: &Session,
    address: &str,
    id: &str,
) -> Result<String, Vec<Diagnostic>> {
    let refuse = |summary: &str, detail: String| vec![Diagnostic::new(summary, detail, None)];
    let Some(declared) = configuration.resources.iter().find(|r| r.address == address) else {
        return Err(refuse(
            "Resource not declared",
            format!("the configuration declares no {address}; write its resource block first, then import it"),
        ));
    };
    let key = declared.kind.natural_key(&declared.values);
    if key.as_deref() != Some(id) {
        return Err(vec![Diagnostic::new(
            "Import id does not match the configuration",
            format!(
                "{address} declares {} {:?}, not {id:?}; import takes the object's id as the configuration names it",
                declared.kind.noun(),
                key.unwrap_or_default()
            ),
            declared.position.clone(),
        )]);
    }
    let registry = &session.platform.registry;
    let read_error = |error: crate::registry::RegistryError| refuse("Cannot read the registry", error_chain(&error));
    if let Some(claim) = registry.get_claim(declared.kind, id).await.map_err(read_error)? {
        if claim.owner == session.owner {
            return Ok(format!("{address} is already managed by {}; nothing to import.", session.owner));
        }
        return Err(refuse(
            &format!("{} {id:?} belongs to another owner", declared.kind.noun()),
            format!("it is managed by {}; the atrium CLI never takes over another owner's objects", claim.owner),
        ));
    }
    let keys = std::collections::BTreeSet::from([id.to_owned()]);
    let observed = super::kinds::observe(session, declared.kind, &keys)
        .await
        .map_err(|detail| refuse("Cannot read the registry", detail))?;
    if !observed.contains_key(id) {
        return Err(refuse(
            &format!("Cannot import a {} that does not exist", declared.kind.noun()),
            format!("the registry has no {} {id:?}", declared.kind.noun()),
        ));
    }
    let tenant = match declared.kind {
        ObjectKind::AppInstance => id.split('/').next().unwrap_or(id),
        ObjectKind::Domain => declared
            .values
            .get("app_instance_id")
            .and_then(|v| v.as_str())
            .and_then(|v| v.split('/').next())
            .unwrap_or(id),
        ObjectKind::Tenant | ObjectKind::SupportPlan => id,
    };
    let tenant = crate::model::TenantId::parse(tenant).map_err(|detail| refuse("Invalid id", detail))?;
    let claim = crate::model::ownership::Claim {
        kind: declared.kind,
        key: id.to_owned(),
        tenant,
        owner: session.owner.clone(),
        create_token: crate::model::ownership::CreateToken::new(),
        confirmed: true,
        created_at: crate::registry::now_rfc3339(),
        address: address.to_owned(),
    };
    registry.restore_claim(&claim).await.map_err(|error| refuse("Cannot record the import", error_chain(&error)))?;
    Ok(format!(
        "{address}: Import prepared! {} {id:?} is now managed by {}; run atrium plan to see how it differs from the configuration.",
        declared.kind.noun(),
        session.owner
    ))
}

/// Every object a plan reads or changes.
fn objects_of(plan: &Plan) -> std::collections::BTreeSet<(ObjectKind, String)> {
    plan.changes.iter().map(|change| (change.kind, change.key.clone())).collect()
}

fn registry_error(detail: String) -> Vec<Diagnostic> {
    vec![Diagnostic::new("Cannot read the registry", detail, None)]
}

/// Applies a saved plan: the configuration is read again (with the plan's
/// variables) only for what a plan never holds (write-only values); a plan
/// of another owner, or one the registry moved past, is refused.
async fn run_saved(arguments: &ApplyArgs, path: &std::path::Path) -> Result<i32, Vec<Diagnostic>> {
    let unreadable = |detail: String| vec![Diagnostic::new("Cannot read the saved plan", detail, None)];
    let message = saved::read(path).map_err(unreadable)?;
    let mut vars = VarArgs { vars: message.variables.iter().map(|(name, value)| format!("{name}={value}")).collect() };
    vars.vars.extend(arguments.vars.vars.iter().cloned());
    let (configuration, document, owner) = load(&vars)?;
    if Owner::atrium(&owner).as_str() != message.owner {
        return Err(vec![Diagnostic::new(
            "Saved plan of another owner",
            format!(
                "{} was planned for {}, but this configuration's owner is {}; run atrium plan here",
                path.display(),
                Owner::from_stored(&message.owner),
                Owner::atrium(&owner)
            ),
            configuration.settings_position.clone(),
        )]);
    }
    let session = session(&document, &owner, handle_interrupts(), configuration.settings_position.clone()).await?;
    let plan = saved::from_message(&message).map_err(unreadable)?;
    let serial = saved::registry_serial(&session, &objects_of(&plan)).await.map_err(registry_error)?;
    if serial != message.registry_serial {
        session.platform.registry.close().await;
        return Err(vec![Diagnostic::new(
            "Saved plan is stale",
            format!(
                "the registry changed since {} was planned at {} (another apply, a Terraform run or a change by hand touched its objects), so its changes may no longer be right. Run atrium plan -out again, then apply the new plan.",
                path.display(),
                message.created_at
            ),
            None,
        )]);
    }
    let what = if message.destroy { "Destroy" } else { "Apply" };
    let parallelism = usize::from(arguments.parallelism);
    let outcome = apply::apply(&plan, Some(&configuration), &session, parallelism, &Progress::new()).await;
    session.platform.registry.close().await;
    Ok(report(&outcome, what))
}

async fn run_apply(arguments: &ApplyArgs, mode: Mode) -> Result<i32, Vec<Diagnostic>> {
    let ApplyArgs { vars, auto_approve, parallelism } = arguments;
    let parallelism = usize::from(*parallelism);
    let (configuration, document, owner) = load(vars)?;
    let session = session(&document, &owner, handle_interrupts(), configuration.settings_position.clone()).await?;
    let plan = plan::plan(&configuration, &session, mode, &Progress::new()).await?;
    print_plan(&plan);
    let what = if mode == Mode::Destroy { "Destroy" } else { "Apply" };
    // Without changes there is nothing to ask (apply still records what an
    // interrupted run left unconfirmed).
    if plan.has_changes() && !*auto_approve && !confirmed("Do you want to perform these actions?") {
        eprintln!("\nApply cancelled.");
        session.platform.registry.close().await;
        return Ok(1);
    }
    let outcome = apply::apply(&plan, Some(&configuration), &session, parallelism, &Progress::new()).await;
    session.platform.registry.close().await;
    Ok(report(&outcome, what))
}

/// Runs the command line `args` (the program name first); answers the exit code.
pub async fn run(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(normalized(args)) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 1 } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    if let Some(directory) = &cli.chdir
        && let Err(error) = std::env::set_current_dir(directory)
    {
        eprintln!("\nError: Invalid -chdir option\n\n{}: {error}", directory.display());
        return 1;
    }
    match run_command(cli.command).await {
        Ok(code) => code,
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn terraform_style_flags_are_understood() {
        assert_eq!(
            normalized(args("atrium -chdir=dir apply -auto-approve -var a=b -parallelism=4")),
            args("atrium --chdir=dir apply --auto-approve --var a=b --parallelism=4")
        );
        let cli = Cli::try_parse_from(normalized(args("atrium -chdir=x plan -var a=1 -var b=2"))).unwrap();
        assert_eq!(cli.chdir, Some(PathBuf::from("x")));
        let Command::Plan { vars, destroy: false, .. } = cli.command else { panic!("{:?}", cli.command) };
        assert_eq!(variables(&vars).unwrap(), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert!(Cli::try_parse_from(normalized(args("atrium apply -parallelism=0"))).is_err());
        assert!(variables(&VarArgs { vars: vec!["novalue".into()] }).is_err());
    }
}
