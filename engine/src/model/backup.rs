//! Backups as declared policy: how often an instance's data is backed up and
//! which of its snapshots are kept, from its tenant's tier.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tier;
use super::timeouts::parse_duration;

/// The shortest interval between scheduled backups (each one dumps the
/// whole database).
pub const SHORTEST_INTERVAL: Duration = Duration::from_secs(60);
/// The longest interval: a week.
pub const LONGEST_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most snapshots one `keep_*` rule may keep.
pub const MOST_KEPT: u32 = 1000;

/// An instance's own backup schedule and retention, over its tier's
/// policy: each attribute left unset keeps the tier's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Time between two scheduled backups, from `1m` to `168h` (e.g. `30m`, `6h`). Default: the
    /// tenant's tier's (basic `24h`, business `6h`, enterprise `1h`). The first runs one interval
    /// after the instance is created.
    #[serde(default)]
    pub interval: Option<String>,
    /// Every snapshot younger than this is kept, from `1h` (e.g. `48h`, the default; whole hours).
    #[serde(default)]
    pub keep_within: Option<String>,
    /// Beyond `keep_within`: the last snapshot of each of this many hours (0 to 1000). Default:
    /// enterprise 24, else 0.
    #[serde(default)]
    pub keep_hourly: Option<u32>,
    /// The last snapshot of each of this many days (0 to 1000). Default: basic 7, business 14,
    /// enterprise 30.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// The last snapshot of each of this many weeks (0 to 1000). Default: basic 4, business 8,
    /// enterprise 12.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// The last snapshot of each of this many months (0 to 1000). Default: basic 0, business 6,
    /// enterprise 12.
    #[serde(default)]
    pub keep_monthly: Option<u32>,
}

/// A restore the configuration asks for: a snapshot of the instance's own
/// backups, or of another instance's (a clone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// `latest`, or a snapshot id (8 to 64 lowercase hex digits, as `atrium snapshots` lists them).
    pub snapshot: String,
    /// Another instance of the same tenant and app on the same target, `TENANT/NAME` (live, or
    /// destroyed with its data kept), whose snapshot to restore: a clone (with `offsite_of`, from its
    /// off-site copy, wherever it ran). Unset: this instance's own.
    #[serde(default)]
    pub from: Option<String>,
    /// A target whose off-site store holds the snapshot (the copy of `from`'s backups, or of this
    /// instance's own, that target's `offsite_backups` made): how an instance comes back on another
    /// target when the target its data was on is lost. Unset: the backups on this instance's target.
    #[serde(default)]
    pub offsite_of: Option<String>,
}

/// Why a backup attribute is refused: the attribute's name and the reason.
pub type SettingError = (&'static str, String);

/// Checks an `interval` value.
pub fn check_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if (SHORTEST_INTERVAL..=LONGEST_INTERVAL).contains(&interval) {
        Ok(interval)
    } else {
        Err(format!("{text:?} is out of range: back up at least every 168h and at most every minute (1m)"))
    }
}

/// Checks a `keep_within` value.
pub fn check_keep_within(text: &str) -> Result<Duration, String> {
    let within = parse_duration(text)?;
    if within.as_secs() >= 3600 && within.as_secs() % 3600 == 0 {
        Ok(within)
    } else {
        Err(format!("{text:?} is not whole hours: keep snapshots within 1h or more, in whole hours (e.g. \"48h\")"))
    }
}

/// Checks a `keep_*` count.
pub fn check_count(count: u64) -> Result<u32, String> {
    u32::try_from(count)
        .ok()
        .filter(|count| *count <= MOST_KEPT)
        .ok_or_else(|| format!("{count} is out of range: keep 0 to {MOST_KEPT} snapshots (0 keeps none by this rule)"))
}

/// When an instance's scheduled backups run and which snapshots they keep
/// (restic's `forget` rules; the latest snapshot is always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupPolicy {
    /// Time between two scheduled backups; the first runs one interval
    /// after the instance's backup container first starts.
    pub interval: Duration,
    /// Every snapshot younger than this is kept (on-demand ones too).
    pub keep_within: Duration,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl BackupPolicy {
    /// The tier's policy: basic daily, business every 6 hours, enterprise
    /// hourly, each keeping more history than the one below.
    pub fn for_tier(tier: Tier) -> BackupPolicy {
        let hours = |hours: u64| Duration::from_secs(hours * 3600);
        match tier {
            Tier::Basic => BackupPolicy {
                interval: hours(24),
                keep_within: hours(48),
                keep_hourly: 0,
                keep_daily: 7,
                keep_weekly: 4,
                keep_monthly: 0,
            },
            Tier::Business => BackupPolicy {
                interval: hours(6),
                keep_within: hours(48),
                keep_hourly: 0,
                keep_daily: 14,
                keep_weekly: 8,
                keep_monthly: 6,
            },
            Tier::Enterprise => BackupPolicy {
                interval: hours(1),
                keep_within: hours(48),
                keep_hourly: 24,
                keep_daily: 30,
                keep_weekly: 12,
                keep_monthly: 12,
            },
        }
    }

    /// This policy with an instance's own settings over it; the first
    /// attribute that is not valid, with why.
    pub fn with(self, settings: Option<&BackupSettings>) -> Result<BackupPolicy, SettingError> {
        let Some(settings) = settings else { return Ok(self) };
        let mut policy = self;
        if let Some(interval) = &settings.interval {
            policy.interval = check_interval(interval).map_err(|reason| ("interval", reason))?;
        }
        if let Some(within) = &settings.keep_within {
            policy.keep_within = check_keep_within(within).map_err(|reason| ("keep_within", reason))?;
        }
        for (name, count, kept) in [
            ("keep_hourly", settings.keep_hourly, &mut policy.keep_hourly),
            ("keep_daily", settings.keep_daily, &mut policy.keep_daily),
            ("keep_weekly", settings.keep_weekly, &mut policy.keep_weekly),
            ("keep_monthly", settings.keep_monthly, &mut policy.keep_monthly),
        ] {
            if let Some(count) = count {
                *kept = check_count(u64::from(count)).map_err(|reason| (name, reason))?;
            }
        }
        Ok(policy)
    }

    /// `restic forget`'s arguments for this policy (the latest snapshot is
    /// always kept, whatever the rules).
    pub fn forget_arguments(&self) -> Vec<String> {
        let within = format!("{}h", self.keep_within.as_secs().div_ceil(3600));
        let mut arguments = ["--keep-last", "1", "--keep-within", &within].map(str::to_owned).to_vec();
        for (flag, count) in [
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
        ] {
            if count > 0 {
                arguments.extend([flag.to_owned(), count.to_string()]);
            }
        }
        arguments
    }
}

/// One snapshot of an instance's backups, as restic lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// restic's snapshot id (64 hex digits).
    pub id: String,
    /// When it was taken (RFC 3339, as restic writes it).
    pub time: String,
    /// The app version that took it, when known.
    pub version: Option<String>,
}

impl Snapshot {
    /// A snapshot named by restic: its id (or short id) must be hex.
    pub fn new(id: &str, time: &str) -> Option<Snapshot> {
        (is_snapshot_reference(id) && id != "latest").then(|| Snapshot {
            id: id.to_owned(),
            time: time.to_owned(),
            version: None,
        })
    }

    /// restic's short form of the id (its first 8 hex digits).
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }
}

/// Whether `text` can name a snapshot: `latest`, or 8 to 64 lowercase hex
/// digits (an id or its prefix). Anything else is refused before it reaches
/// a shell.
pub fn is_snapshot_reference(text: &str) -> bool {
    text == "latest"
        || ((8..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_keeps_the_latest_and_higher_tiers_back_up_more_often() {
        let [basic, business, enterprise] = Tier::ALL.map(BackupPolicy::for_tier);
        assert!(basic.interval > business.interval && business.interval > enterprise.interval);
        assert!(basic.keep_daily < business.keep_daily && business.keep_daily < enterprise.keep_daily);
        let basic_rules = ["--keep-last", "1", "--keep-within", "48h", "--keep-daily", "7", "--keep-weekly", "4"];
        assert_eq!(basic.forget_arguments(), basic_rules);
        assert_eq!(&enterprise.forget_arguments()[4..6], ["--keep-hourly", "24"]);
    }

    #[test]
    fn an_instances_settings_override_its_tiers_policy_one_by_one() {
        let business = BackupPolicy::for_tier(Tier::Business);
        let settings = BackupSettings {
            interval: Some("1m".into()),
            keep_daily: Some(3),
            keep_within: Some("2h".into()),
            ..BackupSettings::default()
        };
        let policy = business.with(Some(&settings)).unwrap();
        assert_eq!(policy.interval, Duration::from_secs(60));
        assert_eq!((policy.keep_daily, policy.keep_weekly), (3, business.keep_weekly));
        assert_eq!(&policy.forget_arguments()[..4], ["--keep-last", "1", "--keep-within", "2h"]);
        assert_eq!(business.with(None).unwrap(), business);
        for (bad, attribute) in [
            (BackupSettings { interval: Some("30s".into()), ..BackupSettings::default() }, "interval"),
            (BackupSettings { interval: Some("169h".into()), ..BackupSettings::default() }, "interval"),
            (BackupSettings { interval: Some("daily".into()), ..BackupSettings::default() }, "interval"),
            (BackupSettings { keep_within: Some("90m".into()), ..BackupSettings::default() }, "keep_within"),
            (BackupSettings { keep_monthly: Some(1001), ..BackupSettings::default() }, "keep_monthly"),
        ] {
            let (refused, reason) = business.with(Some(&bad)).unwrap_err();
            assert_eq!(refused, attribute, "{reason}");
        }
    }

    #[test]
    fn only_ids_and_latest_name_a_snapshot() {
        for good in ["latest", "1a2b3c4d", &"0".repeat(64)] {
            assert!(is_snapshot_reference(good), "{good}");
        }
        for bad in ["", "1a2b3c4", "1A2B3C4D", "1a2b3c4d;rm", "'latest'", &"0".repeat(65), "--help"] {
            assert!(!is_snapshot_reference(bad), "{bad}");
        }
    }
}
