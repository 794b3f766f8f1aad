//! Scheduled backups with restic, run where the data lives.
//!
//! An instance whose catalog entry declares `backup` gets a backup container
//! beside its sidecars (`atrium-T-I-backup`, from the image of the sidecar the
//! entry names, which carries restic). It runs with the instance, Terraform
//! or not: every policy interval it takes a lock, dumps the database with the
//! entry's `backup.dump`, and backs up the dump and the app's volumes into a
//! restic repository in the instance's backup volume
//! (`atrium-T-I-backups:/restic`), then forgets snapshots by the policy.
//! Its health check fails while the last backup failed.
//!
//! The repository's password is generated in the backup volume itself at its
//! first use, never in the registry: data kept on destroy stays restorable
//! by a later instance on the same volumes.
//!
//! The engine runs the same backup on demand, lists the snapshots, and
//! restores one (each a one-shot job made from the backup container). In the
//! snapshots, the dump is `/backup/dump/database.dump` and the app's volume
//! `KEY` (the catalog's volume name) is `/volumes/KEY`.

use super::render::{backup_sidecar, expand_map, job_container, shell_command, shell_word};
use super::{CatalogEntry, ContainerRole, ContainerSpec, HealthSpec, RenderInput, RenderedApp, backup_volume_name};
use crate::model::backup::{BackupPolicy, is_snapshot_reference};
use crate::model::container::labels;

/// The backup container's role name (a catalog sidecar may not take it).
pub const BACKUP_ROLE: &str = "backup";

/// The tag that names the app version a snapshot was taken by.
pub const VERSION_TAG: &str = "version:";

/// Seconds between two prunes of the repository (forgotten snapshots' data
/// is removed then).
const PRUNE_EVERY: u64 = 24 * 3600;

/// Where the latest restore test's result lives, in the backup volume.
pub const RESTORE_TEST_FILE: &str = "/backup/status/restore-test";

/// Removes the repository's stale locks (left by a restic stopped mid-run;
/// `restic unlock` keeps the locks of a restic that runs, in another
/// container, such as the backup beside a restore's staging): only when the
/// repository holds a lock at all, as opening the repository costs about
/// half a second.
const UNLOCK_STALE: &str =
    "if [ -n \"$(ls -A \"$RESTIC_REPOSITORY/locks\" 2>/dev/null)\" ]; then restic unlock > /dev/null 2>&1 || true; fi";

/// The lock of a restore's staging directory, in the backup volume.
const STAGE_LOCK: &str = "/backup/.stage-lock";

/// Where the repository's password lives, in the backup volume.
const PASSWORD_FILE: &str = "/backup/restic-password";

/// The instance's backup container and its one-shot jobs: on-demand backup,
/// snapshot listing and restore.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupJobs {
    /// Runs the schedule (long-running, restarted with the instance).
    pub container: ContainerSpec,
    /// Takes one backup now; its output ends with `atrium-backup: snapshot ID TIME`.
    pub backup_now: ContainerSpec,
    /// Prints the instance's snapshots as restic's JSON (one line).
    pub snapshots: ContainerSpec,
    /// Migrates restored data taken by an earlier version (the entry's
    /// `upgrade.migrate`, in a container of the running version).
    pub migrate: Option<ContainerSpec>,
    /// The command's words before the snapshot argument: see [`BackupJobs::restore`].
    restore_base: ContainerSpec,
    restore_script: String,
    /// The tag of the instance's snapshots (`TENANT/NAME`).
    tag: String,
}

/// What one restore job does: see [`BackupJobs::staged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestorePhase {
    /// Stage and put in, in one job (the app stopped throughout).
    Whole,
    Stage,
    PutIn,
    Discard,
}

/// The jobs of one restore in two parts: see [`BackupJobs::staged`].
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRestore {
    pub stage: ContainerSpec,
    pub put_in: ContainerSpec,
    pub discard: ContainerSpec,
}

/// A repository a restore reads other than the instance's own: another
/// instance's on the same target (its backup volume, a live instance's or
/// the one a destroyed instance left), or a copy in an off-site store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRepository {
    pub location: SourceLocation,
    /// Its snapshots' tag, `TENANT/NAME`.
    pub tag: String,
}

/// Where a [`SourceRepository`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLocation {
    /// A backup volume on the instance's target, `atrium-TENANT-NAME-backups`.
    Volume(String),
    /// The copy of instance `TENANT/NAME`'s backups (made by `owner`) in an off-site store.
    Offsite { store: OffsiteStore, owner: String },
}

impl SourceRepository {
    /// The repository of instance `name` of `tenant` on the same target.
    pub fn of(tenant: &str, name: &str) -> SourceRepository {
        SourceRepository {
            location: SourceLocation::Volume(backup_volume_name(tenant, name)),
            tag: format!("{tenant}/{name}"),
        }
    }

    /// The copy of the backups of instance `name` of `tenant` (made by
    /// `owner`) in the off-site store `store`.
    pub fn offsite(store: &OffsiteStore, owner: &str, tenant: &str, name: &str) -> SourceRepository {
        SourceRepository {
            location: SourceLocation::Offsite { store: store.clone(), owner: owner.to_owned() },
            tag: format!("{tenant}/{name}"),
        }
    }
}

/// The off-site store's image: rclone's restic REST server (`scripts/images/backup-store`).
pub const STORE_IMAGE: &str = "atrium/backup-store:1.60";

/// The off-site store's container, volume and network on its target (a
/// name no instance's objects can have: tenant ids hold no dot).
pub const STORE_NAME: &str = "atrium.backup-store";

/// The port the store listens on in its container.
const STORE_PORT: u16 = 8000;

/// The user name the store's requests sign in with.
const STORE_USER: &str = "atrium";

/// Where an instance's backup container and jobs find the off-site
/// repository and its password (files written into them, never in their
/// environment).
const OFFSITE_REPOSITORY_FILE: &str = "/etc/atrium/offsite/repository";
const OFFSITE_PASSWORD_FILE: &str = "/etc/atrium/offsite/password";

/// Where a restore job finds a source repository in an off-site store.
const SOURCE_REPOSITORY_FILE: &str = "/etc/atrium/source/repository";
const SOURCE_PASSWORD_FILE: &str = "/etc/atrium/source/password";

/// Where the latest off-site copy's result lives, in the backup volume: the
/// local snapshot copied and when (`ID TIME`), or why the copy failed.
pub const OFFSITE_STATUS_FILE: &str = "/backup/status/offsite";

/// An off-site store of restic repositories (a target's `offsite_backups`):
/// rclone's restic REST server, run by Atrium on another target, holding one
/// repository per instance, encrypted with the store's password.
#[derive(Clone, PartialEq, Eq)]
pub struct OffsiteStore {
    /// `HOST:PORT`, as every target's containers reach it.
    address: String,
    password: String,
}

impl std::fmt::Debug for OffsiteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsiteStore").field("address", &self.address).finish_non_exhaustive()
    }
}

impl OffsiteStore {
    /// The store at `address` (`HOST:PORT`) with `password` (URL-safe, as
    /// the configuration checks).
    pub fn new(address: &str, password: &str) -> OffsiteStore {
        OffsiteStore { address: address.to_owned(), password: password.to_owned() }
    }

    /// The repository of instance `TENANT/NAME` made by `owner` (two owners'
    /// instances of the same names never share one).
    fn repository(&self, owner: &str, tag: &str) -> String {
        let owner = super::files_digest(&[("owner".to_owned(), owner.to_owned())].into());
        format!("rest:http://{STORE_USER}:{}@{}/{owner}/{tag}/", self.password, self.address)
    }

    /// The files that point restic at the repository of `tag` (made by
    /// `owner`): the repository file and the password file at these paths.
    fn files(&self, owner: &str, tag: &str, paths: (&str, &str)) -> [(String, String); 2] {
        [
            (paths.0.to_owned(), format!("{}\n", self.repository(owner, tag))),
            (paths.1.to_owned(), format!("{}\n", self.password)),
        ]
    }

    /// The labels of the store's container, volume and network.
    pub fn labels() -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::ROLE.to_owned(), "backup-store".to_owned()),
        ])
    }

    /// The store's container on its target (its volume and network are
    /// [`STORE_NAME`] too), publishing its port on the address's port.
    pub fn container(&self) -> Result<ContainerSpec, String> {
        let port = self
            .address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .ok_or_else(|| format!("{:?} is not HOST:PORT", self.address))?;
        let mut labels = Self::labels();
        let environment: std::collections::BTreeMap<String, String> =
            [("RCLONE_USER", STORE_USER), ("RCLONE_PASS", self.password.as_str())]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        let digested = format!("{STORE_IMAGE}{environment:?}{port}");
        labels.insert(labels::SPEC.to_owned(), super::files_digest(&[("spec".to_owned(), digested)].into()));
        Ok(ContainerSpec {
            name: STORE_NAME.to_owned(),
            role: ContainerRole::Sidecar("backup-store".to_owned()),
            image: STORE_IMAGE.to_owned(),
            command: None,
            environment,
            labels,
            mounts: vec![(STORE_NAME.to_owned(), "/data".to_owned())],
            port: Some(STORE_PORT),
            host_port: Some(port),
            health: None,
            nano_cpus: 1_000_000_000,
            memory_bytes: 512 * 1024 * 1024,
            network: STORE_NAME.to_owned(),
            network_alias: STORE_NAME.to_owned(),
            files: Default::default(),
            capabilities: Vec::new(),
            user: None,
            read_only: true,
            replicas: 1,
        })
    }
}

impl BackupJobs {
    /// The on-demand backup that forgets no snapshot (taken before a restore).
    pub fn backup_keeping_all(&self) -> ContainerSpec {
        let mut job = self.backup_now.clone();
        if let Some(command) = &mut job.command {
            command.extend(["atrium-backup".to_owned(), "keep-all".to_owned()]);
        }
        job
    }

    /// The job that restores `snapshot` (an id, a prefix of one, or
    /// `latest`) in place: the snapshot is restored whole into a staging
    /// directory first (live data is untouched if that fails), then each
    /// volume is emptied and filled from it and the database restored from
    /// its dump. The app must be stopped; the database sidecar must run.
    pub fn restore(&self, snapshot: &str) -> Result<ContainerSpec, String> {
        self.restore_phase(snapshot, &self.tag, RestorePhase::Whole)
    }

    fn restore_phase(&self, snapshot: &str, tag: &str, phase: RestorePhase) -> Result<ContainerSpec, String> {
        if !is_snapshot_reference(snapshot) {
            return Err(format!("{snapshot:?} names no snapshot: give `latest` or a snapshot id (8 to 64 hex digits)"));
        }
        let mut job = self.restore_base.clone();
        let word = match phase {
            RestorePhase::Whole => "whole",
            RestorePhase::Stage => "stage",
            RestorePhase::PutIn => "put-in",
            RestorePhase::Discard => "discard",
        };
        if phase != RestorePhase::Whole {
            job.name = format!("{}-{word}", job.name);
        }
        job.command = Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            self.restore_script.clone(),
            "atrium-restore".to_owned(),
            snapshot.to_owned(),
            tag.to_owned(),
            word.to_owned(),
        ]);
        Ok(job)
    }

    /// The job that restores `snapshot` of `source`'s repository into this
    /// instance (a clone), as [`BackupJobs::restore`] does its own.
    pub fn restore_from(&self, snapshot: &str, source: &SourceRepository) -> Result<ContainerSpec, String> {
        Ok(reading(self.restore_phase(snapshot, &source.tag, RestorePhase::Whole)?, source))
    }

    /// The restore of `snapshot` (of `source`'s repository, or the
    /// instance's own) in two jobs, so that the slow part runs while the
    /// app still serves: `stage` restores the snapshot whole into a staging
    /// directory of the backup volume (it can run beside a backup, and
    /// changes no live data), then, with the app stopped, `put_in` empties
    /// each volume and fills it from there and restores the database. A
    /// staging that is not used is thrown away by `discard`.
    pub fn staged(&self, snapshot: &str, source: Option<&SourceRepository>) -> Result<StagedRestore, String> {
        let tag = source.map_or(&self.tag, |source| &source.tag);
        let stage = self.restore_phase(snapshot, tag, RestorePhase::Stage)?;
        Ok(StagedRestore {
            stage: match source {
                Some(source) => reading(stage, source),
                None => stage,
            },
            put_in: self.restore_phase(snapshot, tag, RestorePhase::PutIn)?,
            discard: self.restore_phase(snapshot, tag, RestorePhase::Discard)?,
        })
    }

    /// The job that records a restore test's result (one line, what a
    /// refresh shows as `latest_restore_test`) in the instance's backup
    /// volume, whether its backup container runs or not.
    pub fn record_restore_test(&self, line: &str) -> ContainerSpec {
        let mut job = self.snapshots.clone();
        job.name = format!("atrium-{}-restore-test-record", self.tag.replace('/', "-"));
        job.command = Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!(
                "set -eu; mkdir -p /backup/status; printf '%s\\n' \"$1\" > {RESTORE_TEST_FILE}.new; mv {RESTORE_TEST_FILE}.new {RESTORE_TEST_FILE}"
            ),
            "atrium-restore-test".to_owned(),
            line.to_owned(),
        ]);
        job
    }

    /// The job that lists `source`'s snapshots, as [`BackupJobs::snapshots`] does this instance's.
    pub fn snapshots_in(&self, source: &SourceRepository) -> ContainerSpec {
        let mut job = self.snapshots.clone();
        if let Some(command) = &mut job.command {
            command.pop();
            command.push(source.tag.clone());
        }
        reading(job, source)
    }
}

/// `job` reading `source`'s repository instead of the instance's own.
fn reading(mut job: ContainerSpec, source: &SourceRepository) -> ContainerSpec {
    match &source.location {
        SourceLocation::Volume(volume) => {
            job.mounts.push((volume.clone(), "/source".to_owned()));
            job.environment.insert("RESTIC_REPOSITORY".to_owned(), "/source/restic".to_owned());
            job.environment.insert("RESTIC_PASSWORD_FILE".to_owned(), "/source/restic-password".to_owned());
        }
        SourceLocation::Offsite { store, owner } => {
            job.files.extend(store.files(owner, &source.tag, (SOURCE_REPOSITORY_FILE, SOURCE_PASSWORD_FILE)));
            job.environment.remove("RESTIC_REPOSITORY");
            job.environment.insert("RESTIC_REPOSITORY_FILE".to_owned(), SOURCE_REPOSITORY_FILE.to_owned());
            job.environment.insert("RESTIC_PASSWORD_FILE".to_owned(), SOURCE_PASSWORD_FILE.to_owned());
        }
    }
    job
}

/// The backup container and jobs of `rendered` (an instance of `entry`), or
/// `None` when the entry declares no backup. With `offsite`, every
/// scheduled or on-demand backup is then copied to the instance's
/// repository in that store.
pub fn render_backups(
    entry: &CatalogEntry,
    input: &RenderInput<'_>,
    rendered: &RenderedApp,
    policy: &BackupPolicy,
    offsite: Option<&OffsiteStore>,
) -> Result<Option<BackupJobs>, String> {
    let Some(backup) = &entry.backup else {
        return Ok(None);
    };
    let sidecar = backup_sidecar(backup, rendered)?;
    let words = |command: &[String]| shell_command(command, input, entry);
    let prefix = format!("atrium-{}-{}-", input.tenant, input.instance);
    // The app's volumes under their catalog names (letters, digits, - and _),
    // so a snapshot's paths do not depend on the instance it came from.
    let volumes: Vec<(String, String)> = rendered
        .app_container()
        .mounts
        .iter()
        .map(|(volume, _)| (volume.clone(), volume.strip_prefix(&prefix).unwrap_or(volume).to_owned()))
        .collect();
    let tag = format!("{}/{}", input.tenant, input.instance);
    // Each snapshot says which version of the app took it: a restore never
    // gives a version data a later one wrote, and migrates older data.
    let version_tag = format!("{VERSION_TAG}{}", input.version);

    let mut container = sidecar;
    container.name = format!("{prefix}{BACKUP_ROLE}");
    container.network_alias = container.name.clone();
    container.role = ContainerRole::Sidecar(BACKUP_ROLE.to_owned());
    container.labels.insert(labels::ROLE.to_owned(), format!("sidecar:{BACKUP_ROLE}"));
    container.environment.extend(expand_map(&backup.environment, input, entry)?);
    container.environment.extend(
        [
            ("RESTIC_REPOSITORY", "/backup/restic"),
            ("RESTIC_PASSWORD_FILE", PASSWORD_FILE),
            ("RESTIC_CACHE_DIR", "/backup/cache"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    container.mounts = std::iter::once((backup_volume_name(input.tenant, input.instance), "/backup".to_owned()))
        .chain(volumes.iter().map(|(volume, key)| (volume.clone(), format!("/volumes/{key}"))))
        .collect();
    // Root with the capabilities reading and restoring other users' files
    // needs (the app's files keep their owners), nothing more.
    container.user = Some("0".to_owned());
    container.capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER"].map(str::to_owned).to_vec();
    container.read_only = false;
    container.port = None;
    container.files = match offsite {
        Some(store) => store.files(input.owner, &tag, (OFFSITE_REPOSITORY_FILE, OFFSITE_PASSWORD_FILE)).into(),
        None => Default::default(),
    };
    // Unhealthy while the last backup failed (checked once a minute).
    container.health = Some(HealthSpec {
        test: ["CMD", "sh", "-c", "! test -e /backup/status/failed"].map(str::to_owned).to_vec(),
        interval_nanoseconds: 60_000_000_000,
        timeout_nanoseconds: 10_000_000_000,
        retries: 1,
        start_period_nanoseconds: 0,
    });

    let paths: Vec<String> = std::iter::once("/backup/dump".to_owned())
        .chain(volumes.iter().map(|(_, key)| format!("/volumes/{key}")))
        .collect();
    let mut backup_function = vec![
        // A subshell: `set -e` and the lock end with it.
        "backup() (".to_owned(),
        "  set -eu".to_owned(),
        "  exec 9>/backup/.lock".to_owned(),
        "  flock 9".to_owned(),
        // Not beside a restore's staging (its restic would keep `forget`
        // from locking the repository), except the backup that restore takes.
        format!("  if [ \"${{1:-}}\" != keep-all ]; then exec 8>{STAGE_LOCK}; flock 8; fi"),
        "  prepare".to_owned(),
        "  rm -rf /backup/dump && mkdir -p /backup/dump /backup/status".to_owned(),
        format!("  {} > /backup/dump/database.dump", words(&backup.dump)?),
        format!(
            "  restic backup --host atrium --tag {} --tag {} {} > /backup/status/output 2>&1 || {{ cat /backup/status/output >&2; exit 1; }}",
            shell_word(&tag),
            shell_word(&version_tag),
            paths.join(" ")
        ),
        "  snapshot=$(sed -n 's/^snapshot \\([0-9a-f]*\\) saved$/\\1/p' /backup/status/output)".to_owned(),
        "  [ -n \"$snapshot\" ] || { cat /backup/status/output >&2; echo 'atrium-backup: restic named no snapshot' >&2; exit 1; }".to_owned(),
        // `keep-all`: a backup taken before a restore forgets nothing (the
        // snapshot being restored must stay).
        format!("  if [ \"${{1:-}}\" != keep-all ]; then restic forget --host atrium --tag {} {} > /backup/status/forget 2>&1 || {{ cat /backup/status/forget >&2; exit 1; }}; fi", shell_word(&tag), policy.forget_arguments().join(" ")),
        // Pruning rewrites the repository's packs: once a day, not at every backup.
        "  [ -s /backup/status/pruned ] || date +%s > /backup/status/pruned".to_owned(),
        format!("  if [ \"${{1:-}}\" != keep-all ] && [ \"$(date +%s)\" -ge $(( $(cat /backup/status/pruned) + {PRUNE_EVERY} )) ]; then restic prune > /backup/status/prune 2>&1 || {{ cat /backup/status/prune >&2; exit 1; }}; date +%s > /backup/status/pruned; fi"),
        "  rm -rf /backup/dump".to_owned(),
        "  echo \"$snapshot $(date -u +%Y-%m-%dT%H:%M:%SZ)\" > /backup/status/latest".to_owned(),
        "  rm -f /backup/status/failed".to_owned(),
        "  echo \"atrium-backup: snapshot $(cat /backup/status/latest)\"".to_owned(),
        ")".to_owned(),
    ];
    // Copies snapshot $1 to the off-site repository (made at first use with
    // the local one's chunker, so that copies share data), forgets there by
    // the same policy, prunes there once a day; records the result.
    let mut copy_function = Vec::new();
    if offsite.is_some() {
        // The off-site copy's failure does not fail the backup (it is safe
        // here): it is recorded, and the next backup copies again.
        let announce = backup_function.len() - 2;
        backup_function
            .insert(announce, "  if [ \"${1:-}\" != keep-all ]; then offsite \"$snapshot\" || true; fi".to_owned());
        copy_function = vec![
        "offsite() (".to_owned(),
        "  set -u".to_owned(),
        "  unset RESTIC_REPOSITORY".to_owned(),
        format!(
            "  export RESTIC_REPOSITORY_FILE={OFFSITE_REPOSITORY_FILE} RESTIC_PASSWORD_FILE={OFFSITE_PASSWORD_FILE}"
        ),
        format!("  from=\"--from-repo /backup/restic --from-password-file {PASSWORD_FILE}\""),
        "  out=/backup/status/offsite-output".to_owned(),
        "  pruned=/backup/status/offsite-pruned".to_owned(),
        "  if { restic cat config > /dev/null 2>&1 || restic init $from --copy-chunker-params; } > $out 2>&1 &&"
            .to_owned(),
        "    restic copy $from \"$1\" >> $out 2>&1 &&".to_owned(),
        format!(
            "    restic forget --host atrium --tag {} {} >> $out 2>&1; then",
            shell_word(&tag),
            policy.forget_arguments().join(" ")
        ),
        "    status=\"$1 $(date -u +%Y-%m-%dT%H:%M:%SZ)\"".to_owned(),
        "  else".to_owned(),
        "    status=\"failed $(date -u +%Y-%m-%dT%H:%M:%SZ): $(tail -n 1 $out)\"".to_owned(),
        "  fi".to_owned(),
        format!("  echo \"$status\" > {OFFSITE_STATUS_FILE}.new && mv {OFFSITE_STATUS_FILE}.new {OFFSITE_STATUS_FILE}"),
        "  case $status in failed*) cat $out >&2; echo 'atrium-backup: the off-site copy failed' >&2; return 1 ;; esac"
            .to_owned(),
        "  [ -s $pruned ] || date +%s > $pruned".to_owned(),
        format!(
            "  if [ \"$(date +%s)\" -ge $(( $(cat $pruned) + {PRUNE_EVERY} )) ] && restic prune >> $out 2>&1; then date +%s > $pruned; fi"
        ),
        "  echo \"atrium-backup: off-site copy $status\"".to_owned(),
        ")".to_owned(),
    ];
    }
    // The repository and its password, made at first use; a password file
    // is written whole before it is used.
    let prepare_function = [
        "prepare() {".to_owned(),
        format!(
            "  if [ ! -s {PASSWORD_FILE} ]; then (umask 077; head -c 30 /dev/urandom | base64 > {PASSWORD_FILE}.new && mv {PASSWORD_FILE}.new {PASSWORD_FILE}); fi"
        ),
        "  [ -f /backup/restic/config ] || restic init > /dev/null".to_owned(),
        // Called under the lock, when no other restic of this instance runs:
        // a lock left by one stopped mid-run (its container stopped) is stale.
        format!("  {UNLOCK_STALE}"),
        "}".to_owned(),
    ];
    let functions =
        [prepare_function.as_slice(), copy_function.as_slice(), backup_function.as_slice()].concat().join("\n");
    let interval = policy.interval.as_secs();
    let schedule = [
        "set -u".to_owned(),
        functions.clone(),
        "mkdir -p /backup/status".to_owned(),
        // The first backup one interval after the first start (the app is
        // still making its database then); later starts keep the schedule,
        // unless a shorter interval brings the next backup closer.
        format!("soonest=$(( $(date +%s) + {interval} ))"),
        "if [ ! -s /backup/status/next ] || [ \"$(cat /backup/status/next)\" -gt \"$soonest\" ]; then echo \"$soonest\" > /backup/status/next; fi".to_owned(),
        format!("echo \"atrium-backup: every {interval} s, the next at $(date -u -d @$(cat /backup/status/next) +%Y-%m-%dT%H:%M:%SZ)\""),
        "trap 'exit 0' TERM INT".to_owned(),
        "while :; do".to_owned(),
        "  if [ \"$(date +%s)\" -ge \"$(cat /backup/status/next)\" ]; then".to_owned(),
        format!("    echo $(( $(date +%s) + {interval} )) > /backup/status/next"),
        "    if ! backup; then date -u +%Y-%m-%dT%H:%M:%SZ > /backup/status/failed; echo 'atrium-backup: the backup failed' >&2; fi".to_owned(),
        "  fi".to_owned(),
        "  sleep 10 & wait $!".to_owned(),
        "done".to_owned(),
    ];
    container.command = Some(vec!["sh".to_owned(), "-c".to_owned(), schedule.join("\n")]);
    // The off-site store's files count only when there are some: the spec
    // of a container that copies nothing is what it was before them.
    let mut digested = format!("{:?}{:?}{:?}", container.command, container.environment, container.mounts);
    if !container.files.is_empty() {
        digested.push_str(&super::files_digest(&container.files));
    }
    container.labels.insert(labels::SPEC.to_owned(), super::files_digest(&[("spec".to_owned(), digested)].into()));

    let job = |name: &str, lines: Vec<String>| {
        let mut job = job_container(
            &container,
            format!("{prefix}{name}"),
            name,
            vec!["sh".to_owned(), "-c".to_owned(), lines.join("\n")],
        );
        job.health = None;
        job
    };
    let backup_now = job(
        "backup-now",
        vec![
            "set -u".to_owned(),
            functions.clone(),
            "if ! backup \"${1:-}\"; then date -u +%Y-%m-%dT%H:%M:%SZ > /backup/status/failed; exit 1; fi".to_owned(),
        ],
    );
    // The tag is the script's argument: a clone lists another instance's.
    let mut snapshots = job(
        "snapshots",
        vec![
            "set -eu".to_owned(),
            // A repository on a volume that was never made holds no snapshot
            // (one in an off-site store that does not exist is an error).
            "case \"${RESTIC_REPOSITORY:-}\" in /*) [ -f \"$RESTIC_REPOSITORY/config\" ] || { echo '[]'; exit 0; } ;; esac".to_owned(),
            // A backup's forget locks the repository for a moment: the
            // listing waits for it (restic before 0.16 has no --retry-lock).
            "mkdir -p /backup/status".to_owned(),
            "for attempt in $(seq 30); do".to_owned(),
            "  if restic snapshots --json --host atrium --tag \"$1\" 2> /backup/status/snapshots-error; then exit 0; fi".to_owned(),
            "  grep -q 'already locked' /backup/status/snapshots-error || break".to_owned(),
            "  sleep 1".to_owned(),
            "done".to_owned(),
            "cat /backup/status/snapshots-error >&2".to_owned(),
            "exit 1".to_owned(),
        ],
    );
    if let Some(command) = &mut snapshots.command {
        command.extend(["atrium-snapshots".to_owned(), tag.clone()]);
    }
    // The phase is the third argument (see `RestorePhase`). Staging takes
    // only the staging lock, so that it runs beside the backup taken before
    // a restore (which takes only the instance's lock); everything that
    // changes live data takes both, the instance's first.
    let mut restore = vec![
        "set -eu".to_owned(),
        "snapshot=$1".to_owned(),
        "tag=$2".to_owned(),
        "phase=${3:-whole}".to_owned(),
        "staging=/backup/restore".to_owned(),
        "if [ \"$phase\" != stage ]; then exec 9>/backup/.lock; flock 9; fi".to_owned(),
        format!("exec 8>{STAGE_LOCK}"),
        "flock 8".to_owned(),
        "if [ \"$phase\" = discard ]; then rm -rf $staging; exit 0; fi".to_owned(),
        "if [ \"$phase\" = put-in ]; then".to_owned(),
        // Another restore of the instance may have staged since.
        "  [ \"$(cat $staging/.staged 2>/dev/null)\" = \"$snapshot $tag\" ] || { echo \"atrium-restore: snapshot $snapshot is no longer staged (another restore of the instance staged since)\" >&2; exit 1; }".to_owned(),
        "else".to_owned(),
        format!("  {UNLOCK_STALE}"),
        "  rm -rf $staging && mkdir -p $staging /backup/status".to_owned(),
        format!(
            "  restic restore \"$snapshot\" --host atrium --tag \"$tag\" --target $staging > /backup/status/restore 2>&1 || {{ cat /backup/status/restore >&2; rm -rf $staging; exit 1; }}"
        ),
        "  [ -f $staging/backup/dump/database.dump ] || { echo \"atrium-restore: snapshot $snapshot holds no database dump\" >&2; rm -rf $staging; exit 1; }".to_owned(),
    ];
    for (_, key) in &volumes {
        restore.push(format!(
            "  [ -d $staging/volumes/{key} ] || {{ echo \"atrium-restore: snapshot $snapshot holds no volume {key}\" >&2; rm -rf $staging; exit 1; }}"
        ));
    }
    restore.extend([
        "  echo \"$snapshot $tag\" > $staging/.staged".to_owned(),
        "  if [ \"$phase\" = stage ]; then echo \"atrium-restore: staged snapshot $snapshot\"; exit 0; fi".to_owned(),
        "fi".to_owned(),
    ]);
    for (_, key) in &volumes {
        restore.push(format!("find /volumes/{key} -mindepth 1 -delete"));
        restore.push(format!("cp -a $staging/volumes/{key}/. /volumes/{key}/"));
    }
    restore.push(format!("{} < $staging/backup/dump/database.dump", words(&backup.restore)?));
    restore.push("rm -rf $staging".to_owned());
    restore.push("echo \"atrium-restore: restored snapshot $snapshot\"".to_owned());
    let restore_base = job("restore-snapshot", Vec::new());
    Ok(Some(BackupJobs {
        container,
        backup_now,
        snapshots,
        migrate: None,
        restore_base,
        restore_script: restore.join("\n"),
        tag,
    }))
}
