//! One CLI run against the platform: the platform the `atrium` block names,
//! the owner the run speaks for, the observations shared by its reads, and
//! the signal that asks it to stop.

use tokio::sync::watch;

use crate::model::ownership::Owner;
use crate::observe::{AppObservations, DomainObservations, TenantObserver};
use crate::platform::Platform;

pub struct Session {
    pub platform: Platform,
    pub owner: Owner,
    pub tenants: TenantObserver,
    pub apps: AppObservations,
    pub domains: DomainObservations,
    /// Flips on the first Ctrl-C: steps in flight finish, nothing new starts.
    pub cancelled: watch::Receiver<bool>,
}

impl Session {
    pub fn new(platform: Platform, owner: Owner, cancelled: watch::Receiver<bool>) -> Self {
        let tenants = TenantObserver::new(platform.registry.clone());
        Self {
            platform,
            owner,
            tenants,
            apps: AppObservations::default(),
            domains: DomainObservations::default(),
            cancelled,
        }
    }

    /// Forgets every snapshot (after apply, before a refresh).
    pub async fn invalidate(&self) {
        self.tenants.invalidate().await;
        self.apps.clear().await;
        self.domains.clear().await;
    }
}
