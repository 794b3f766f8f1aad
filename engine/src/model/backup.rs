//! Backups as declared policy: how often an instance's data is backed up and
//! which of its snapshots are kept, from its tenant's tier.

use std::time::Duration;

use super::Tier;

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
    fn only_ids_and_latest_name_a_snapshot() {
        for good in ["latest", "1a2b3c4d", &"0".repeat(64)] {
            assert!(is_snapshot_reference(good), "{good}");
        }
        for bad in ["", "1a2b3c4", "1A2B3C4D", "1a2b3c4d;rm", "'latest'", &"0".repeat(65), "--help"] {
            assert!(!is_snapshot_reference(bad), "{bad}");
        }
    }
}
