//! Data kept on destroy, as the front doors show it: the `atrium_kept_data`
//! data source and `atrium kept -json` list the same entries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::app_instance::AppInstanceId;
use crate::model::ids::TenantId;

/// The data destroyed app instances left on their targets (volumes kept by `delete_data_on_destroy = false`,
/// with their backup repository), by instance and target. An instance of the same tenant, name and app created
/// on the same target takes the data over and can restore its snapshots. To delete it: `atrium purge
/// TENANT/NAME` for the CLI's data; for Terraform's, apply the instance again with `delete_data_on_destroy =
/// true` and destroy it. Volumes of instances that exist are never listed. A target that does not answer is named in
/// `unreachable_targets` (and a warning), and the data on it is not listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeptDataDocument {
    /// Only the data of this tenant's instances (all tenants' when unset).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Only the data on this target (every configured target when unset).
    #[serde(default)]
    pub target: Option<String>,
    /// The kept data, sorted by instance and target.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub kept: Option<Vec<KeptEntry>>,
    /// Targets that did not answer: data kept there is not listed.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub unreachable_targets: Option<Vec<String>>,
}

/// The data one destroyed instance left on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeptEntry {
    /// The destroyed instance's id, `TENANT/NAME`: the handle `atrium purge` and `atrium restore -from` take.
    pub instance: String,
    /// The instance's tenant.
    pub tenant_id: String,
    /// The instance's name.
    pub name: String,
    /// The target the data is on.
    pub target: String,
    /// Who made the instance (`terraform:NAME` for a Terraform configuration, `atrium:NAME` for the CLI's);
    /// only they may delete the data.
    pub owner: String,
    /// The Docker volumes kept.
    pub volumes: Vec<String>,
    /// Whether the instance's backup repository is among them (its snapshots can be restored).
    pub backups: bool,
    /// When the oldest of the volumes was made (RFC 3339), as Docker reports it.
    pub created_at: Option<String>,
}

impl From<&KeptData> for KeptEntry {
    fn from(kept: &KeptData) -> KeptEntry {
        KeptEntry {
            instance: kept.instance.to_string(),
            tenant_id: kept.instance.tenant_id.to_string(),
            name: kept.instance.name.clone(),
            target: kept.target.clone(),
            owner: kept.owner.clone(),
            volumes: kept.volumes.clone(),
            backups: kept.backups,
            created_at: kept.created_at.clone(),
        }
    }
}

/// The data one destroyed instance left on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptData {
    pub instance: AppInstanceId,
    pub target: String,
    /// Who made the instance (the owner label of its volumes).
    pub owner: String,
    pub volumes: Vec<String>,
    /// Whether its backup repository is among them: a new instance of the
    /// same name restores its snapshots.
    pub backups: bool,
    /// When the oldest of the volumes was made (RFC 3339), as Docker says.
    pub created_at: Option<String>,
}

/// The filters of a `KeptDataDocument`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptFilter {
    pub tenant_id: Option<TenantId>,
    pub target: Option<String>,
}

impl KeptFilter {
    /// Checks the filters: `tenant_id` must be a tenant name, `target` one
    /// of `targets` when they are known. Errors name the attribute.
    pub fn of(document: &KeptDataDocument, targets: Option<&[&str]>) -> Result<KeptFilter, (&'static str, String)> {
        let tenant_id = match &document.tenant_id {
            Some(tenant) => Some(TenantId::parse(tenant).map_err(|detail| ("tenant_id", detail))?),
            None => None,
        };
        if let (Some(target), Some(targets)) = (&document.target, targets)
            && !targets.contains(&target.as_str())
        {
            let known = targets.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
            return Err(("target", format!("{target:?} is not a configured target; the provider knows {known}")));
        }
        Ok(KeptFilter { tenant_id, target: document.target.clone() })
    }

    pub fn admits(&self, kept: &KeptData) -> bool {
        self.tenant_id.as_ref().is_none_or(|tenant| kept.instance.tenant_id == *tenant)
            && self.target.as_ref().is_none_or(|target| kept.target == *target)
    }

    /// The document with what a listing found, filtered, sorted.
    pub fn document(&self, found: &[KeptData], unreachable: &[(String, String)]) -> KeptDataDocument {
        let mut kept: Vec<KeptEntry> = found.iter().filter(|kept| self.admits(kept)).map(KeptEntry::from).collect();
        kept.sort_by(|a, b| (&a.instance, &a.target).cmp(&(&b.instance, &b.target)));
        let unreachable = unreachable
            .iter()
            .filter(|(target, _)| self.target.as_ref().is_none_or(|wanted| wanted == target))
            .map(|(target, _)| target.clone())
            .collect();
        KeptDataDocument {
            tenant_id: self.tenant_id.as_ref().map(ToString::to_string),
            target: self.target.clone(),
            kept: Some(kept),
            unreachable_targets: Some(unreachable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(instance: &str, target: &str) -> KeptData {
        KeptData {
            instance: AppInstanceId::parse(instance).unwrap(),
            target: target.into(),
            owner: "terraform".into(),
            volumes: vec![format!("atrium-{}-data", instance.replace('/', "-"))],
            backups: false,
            created_at: Some("2026-12-03T10:00:00Z".into()),
        }
    }

    fn document(json: serde_json::Value) -> KeptDataDocument {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn kept_data_is_filtered_by_tenant_and_target_and_sorted() {
        let found = [kept("beta/wiki", "lyon"), kept("acme/web", "fra"), kept("acme/erp", "lyon")];
        let unreachable = [("paris".to_owned(), "connection refused".to_owned())];
        let all = KeptFilter::of(&document(serde_json::json!({})), Some(&["lyon", "fra", "paris"])).unwrap();
        let listed = all.document(&found, &unreachable);
        let instances: Vec<&str> = listed.kept.iter().flatten().map(|k| k.instance.as_str()).collect();
        assert_eq!(instances, ["acme/erp", "acme/web", "beta/wiki"]);
        assert_eq!(listed.unreachable_targets, Some(vec!["paris".to_owned()]));
        let acme = KeptFilter::of(&document(serde_json::json!({"tenant_id": "acme"})), None).unwrap();
        let instances: Vec<String> =
            acme.document(&found, &unreachable).kept.unwrap().into_iter().map(|k| k.name).collect();
        assert_eq!(instances, ["erp", "web"]);
        let lyon = KeptFilter::of(&document(serde_json::json!({"target": "lyon"})), Some(&["lyon"])).unwrap();
        let listed = lyon.document(&found, &unreachable);
        assert_eq!(listed.kept.unwrap().len(), 2);
        assert_eq!(listed.unreachable_targets, Some(Vec::new()), "only the target asked about");
    }

    #[test]
    fn bad_filters_name_their_attribute_and_what_is_valid() {
        let (attribute, detail) =
            KeptFilter::of(&document(serde_json::json!({"tenant_id": "Not A Tenant"})), None).unwrap_err();
        assert_eq!(attribute, "tenant_id", "{detail}");
        let (attribute, detail) =
            KeptFilter::of(&document(serde_json::json!({"target": "mars"})), Some(&["lyon", "fra"])).unwrap_err();
        assert_eq!(attribute, "target");
        assert!(detail.contains("\"mars\"") && detail.contains("\"lyon\", \"fra\""), "{detail}");
    }
}
