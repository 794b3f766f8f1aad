//! The support tracker role: one project per tenant, where the tenant's people
//! file and follow support tickets under the support level they pay for.
//!
//! Implemented on Redmine's REST API (`redmine`). A tenant's project has the
//! identifier `atrium-<tenant>` and a description whose line
//! `Managed by Atrium for tenant <tenant>.` is our label: a project with our
//! identifier but without that line belongs to someone else and is never
//! changed. Users are keyed on their login (the manager's email address) and
//! projects on their identifier, never on Redmine's numeric ids, which SQLite
//! hands out again after a delete.

use async_trait::async_trait;

/// What every project identifier Atrium uses starts with.
pub const PROJECT_IDENTIFIER_PREFIX: &str = "atrium-";

/// The name of the list-type project custom field that holds the support
/// level. Custom fields cannot be created over REST, so the operator (or the
/// services script) creates it, and Atrium looks its id up by this name.
pub const SUPPORT_LEVEL_FIELD: &str = "Support level";

/// Redmine refuses first and last names longer than this many characters.
const NAME_PART_LIMIT: usize = 30;

/// The last name of a person known by one name only: Redmine requires a last
/// name, a dash reads as "none" in lists, and repeating the one name would
/// show "Cher Cher".
const MISSING_NAME_PART: &str = "-";

/// The project identifier of `tenant`'s support project. Tenant names are
/// slugs, so the identifier fits Redmine's rule (lowercase letters, digits and
/// dashes, starting with a letter) without escaping.
pub fn project_identifier(tenant: &str) -> String {
    format!("{PROJECT_IDENTIFIER_PREFIX}{tenant}")
}

/// The line of a project's description that marks it as `tenant`'s project
/// managed by Atrium.
pub fn managed_description_line(tenant: &str) -> String {
    format!("Managed by Atrium for tenant {tenant}.")
}

/// The description Atrium writes on the projects it creates: the mark, and a
/// word to people who might edit the project by hand.
pub fn managed_description(tenant: &str) -> String {
    format!(
        "{}\nAtrium sets this project's name, support level and members; changes made here by hand are undone.",
        managed_description_line(tenant)
    )
}

/// Whether `description` carries Atrium's mark for `tenant` on a line of its
/// own. Other lines may be added by hand; removing the mark hands the project
/// back to people, and Atrium then refuses to touch it.
pub fn is_managed_description(description: &str, tenant: &str) -> bool {
    let mark = managed_description_line(tenant);
    description.lines().any(|line| line.trim() == mark)
}

/// Splits a display name such as "Dana Fischer" into Redmine's first and last
/// name, which it requires both of.
///
/// The first word is the first name and the rest the last name, so particles
/// and double surnames stay together ("Ludwig van Beethoven" → "Ludwig",
/// "van Beethoven"); Redmine shows "first last" either way. A one-word name
/// gets [`MISSING_NAME_PART`] as its last name, and an empty one as both.
/// Each part is cut to Redmine's 30 characters.
pub fn split_display_name(display_name: &str) -> (String, String) {
    let mut words = display_name.split_whitespace();
    let first_name = words.next().unwrap_or(MISSING_NAME_PART);
    let rest: Vec<&str> = words.collect();
    let last_name = if rest.is_empty() { MISSING_NAME_PART.to_owned() } else { rest.join(" ") };
    (cut_to_name_limit(first_name), cut_to_name_limit(&last_name))
}

fn cut_to_name_limit(part: &str) -> String {
    part.chars().take(NAME_PART_LIMIT).collect()
}

/// A tenant's support project as Atrium wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportProject {
    /// The tenant's name; the project identifier is [`project_identifier`] of it.
    pub tenant: String,
    /// The project's name as people see it, e.g. the tenant's display name.
    pub name: String,
    /// One of the values of the [`SUPPORT_LEVEL_FIELD`] list, e.g. `standard_8x5`.
    pub level: String,
}

/// A person who gets access to a tenant's support project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUser {
    /// The login, which is the manager's email address: unique, stable, and
    /// what the person already uses to sign in to the tenant's apps.
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl TrackerUser {
    /// The tracker user of a tenant's manager: logs in with the email address,
    /// named after the display name split by [`split_display_name`]. A blank
    /// display name falls back to the email address's local part.
    pub fn from_manager(email: &str, display_name: &str) -> TrackerUser {
        let local_part = email.split('@').next().unwrap_or(email);
        let display_name = if display_name.trim().is_empty() { local_part } else { display_name };
        let (first_name, last_name) = split_display_name(display_name);
        TrackerUser { login: tracker_login(email), email: email.to_owned(), first_name, last_name }
    }
}

/// The longest login Redmine takes.
const TRACKER_LOGIN_LIMIT: usize = 60;

/// The manager's tracker login: the email address itself when Redmine takes
/// it (at most 60 characters of letters, digits and `_-@.`), else the same
/// shortened and made safe, with a digest of the whole address so that two
/// managers never share one. Redmine signs in by login only, never by email.
pub fn tracker_login(email: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-@.".contains(c);
    if email.len() <= TRACKER_LOGIN_LIMIT && email.chars().all(allowed) {
        return email.to_owned();
    }
    use sha2::Digest as _;
    let digest: String = sha2::Sha256::digest(email.to_ascii_lowercase().as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let safe: String = email.chars().map(|c| if allowed(c) { c.to_ascii_lowercase() } else { '_' }).collect();
    let keep = TRACKER_LOGIN_LIMIT - digest.len() - 1;
    format!("{}-{digest}", safe.chars().take(keep).collect::<String>())
}

/// A tenant's support project as the tracker has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSupportProject {
    pub name: String,
    /// `None` when the support level field is empty (set to nothing by hand).
    pub level: Option<String>,
    /// The logins of the users who are members, sorted; group memberships are
    /// left out, since Atrium only grants access to users.
    pub member_logins: Vec<String>,
}

/// A support tracker failure, with what was asked and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("cannot reach the support tracker (Redmine) at {url}; check that it runs there (tracker.url)")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The tracker did not accept the API key (Redmine answers 401 for
    /// `/users/current.json`); other requests with a bad key would be served
    /// as an anonymous visitor, which is why the key is checked first. Redmine
    /// answers the same when its REST API is switched off.
    #[error(
        "the support tracker at {url} refused the API key (HTTP 401): check the key, and that the tracker's REST API \
         is enabled"
    )]
    Unauthorized { url: String },
    /// `message` is the tracker's own explanation (Redmine's `errors`, joined).
    #[error("the support tracker refused to {operation} (HTTP {status}): {message}")]
    Api { operation: String, status: u16, message: String },
    #[error(
        "project {identifier} exists in the support tracker but is not managed by Atrium (its description lacks \
         Atrium's line); Atrium never changes it"
    )]
    NotManaged { identifier: String },
    /// Access was granted to a project that does not exist: the support project
    /// is ensured before anyone is given access to it.
    #[error("project {identifier} does not exist in the support tracker; ensure the project before granting access")]
    ProjectMissing { identifier: String },
    /// Something only the tracker's administrator can make is missing (a role,
    /// the support level field) or the API key cannot do what Atrium needs.
    #[error("the support tracker at {url} is not set up for Atrium: {what}")]
    Setup { url: String, what: String },
}

impl TrackerError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            TrackerError::Connect { .. } => true,
            TrackerError::Api { status, .. } => *status >= 500 || *status == 429,
            TrackerError::Unauthorized { .. }
            | TrackerError::NotManaged { .. }
            | TrackerError::ProjectMissing { .. }
            | TrackerError::Setup { .. } => false,
        }
    }
}

/// A support tracker holding one project per tenant.
///
/// Every call is idempotent: it reads before it writes, writes only what
/// differs, and treats "already there" on create and "not there" on delete
/// as done, so a failed apply is repaired by applying again.
#[async_trait]
pub trait Tracker: Send + Sync {
    /// Creates the tenant's project (private) or brings its name and support
    /// level in line; an equal project is not written.
    async fn ensure_project(&self, project: &SupportProject) -> Result<(), TrackerError>;
    /// Makes `user` a member of the tenant's project with the role named
    /// `role` (e.g. `Reporter`), creating the user (with a generated password)
    /// or unlocking them as needed. The project must exist.
    async fn grant_access(&self, tenant: &str, user: &TrackerUser, role: &str) -> Result<(), TrackerError>;
    /// Ends the membership of the user `login` in the tenant's project, and
    /// deletes the user once they are a member of no project at all (never an
    /// administrator). A missing project, user or membership is fine.
    async fn revoke_access(&self, tenant: &str, login: &str) -> Result<(), TrackerError>;
    /// Deletes the tenant's project with its tickets; a missing one is fine.
    /// Members keep their users: revoke their access first to remove those.
    async fn remove_project(&self, tenant: &str) -> Result<(), TrackerError>;
    /// The tenant's project with its support level and members; `None` when
    /// it does not exist.
    async fn observe(&self, tenant: &str) -> Result<Option<ObservedSupportProject>, TrackerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_logins_fit_redmine_and_stay_distinct() {
        assert_eq!(tracker_login("it-lead@acme.example"), "it-lead@acme.example");
        let long = format!("{}@subsidiary.example", "a".repeat(60));
        let login = tracker_login(&long);
        assert!(login.len() <= 60 && login.starts_with("aaaa"), "{login}");
        assert_ne!(login, tracker_login(&long.replace("subsidiary", "other")));
        let plus = tracker_login("dana+support@acme.example");
        assert!(plus.chars().all(|c| c.is_ascii_alphanumeric() || "_-@.".contains(c)), "{plus}");
    }

    #[test]
    fn display_names_split_into_first_and_last_name() {
        let long_word = "x".repeat(40);
        let cut_word = "x".repeat(30);
        let cases: &[(&str, &str, &str)] = &[
            ("Dana Fischer", "Dana", "Fischer"),
            ("  Dana   Fischer ", "Dana", "Fischer"),
            ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
            ("Gabriel García Márquez", "Gabriel", "García Márquez"),
            ("Cher", "Cher", "-"),
            ("", "-", "-"),
            ("   ", "-", "-"),
            (&long_word, &cut_word, "-"),
            ("Åsa Öberg", "Åsa", "Öberg"),
        ];
        for (display_name, first_name, last_name) in cases {
            assert_eq!(
                split_display_name(display_name),
                (first_name.to_string(), last_name.to_string()),
                "splitting {display_name:?}"
            );
        }
        let (_, last_name) = split_display_name(&format!("A {}", "é".repeat(35)));
        assert_eq!(last_name.chars().count(), 30, "cut by characters, not bytes");
    }

    #[test]
    fn managers_log_in_with_their_email_address() {
        let cases = [
            ("dana@acme.test", "Dana Fischer", "Dana", "Fischer"),
            ("dana@acme.test", "", "dana", "-"),
            ("ops.team@acme.test", " ", "ops.team", "-"),
        ];
        for (email, display_name, first_name, last_name) in cases {
            let user = TrackerUser::from_manager(email, display_name);
            let expected = TrackerUser {
                login: email.to_owned(),
                email: email.to_owned(),
                first_name: first_name.to_owned(),
                last_name: last_name.to_owned(),
            };
            assert_eq!(user, expected, "manager {email:?} named {display_name:?}");
        }
    }

    #[test]
    fn only_a_line_with_atriums_mark_for_the_same_tenant_makes_a_project_managed() {
        let cases = [
            (managed_description("acme"), true),
            ("Managed by Atrium for tenant acme.".to_owned(), true),
            ("Notes by ops.\r\n  Managed by Atrium for tenant acme.  \r\nMore notes.".to_owned(), true),
            ("Managed by Atrium for tenant beta.".to_owned(), false),
            ("Managed by Atrium for tenant acme-gmbh.".to_owned(), false),
            ("We said: Managed by Atrium for tenant acme.".to_owned(), false),
            ("managed by atrium for tenant acme.".to_owned(), false),
            (String::new(), false),
        ];
        for (description, managed) in cases {
            assert_eq!(is_managed_description(&description, "acme"), managed, "{description:?}");
        }
        assert_eq!(project_identifier("acme-gmbh"), "atrium-acme-gmbh");
    }

    #[test]
    fn server_trouble_is_retryable_and_refusals_are_not() {
        let api = |status| TrackerError::Api { operation: "create project".into(), status, message: String::new() };
        let cases = [
            (api(500), true),
            (api(503), true),
            (api(429), true),
            (api(422), false),
            (api(403), false),
            (api(404), false),
            (TrackerError::Connect { url: "http://x".into(), source: "refused".into() }, true),
            (TrackerError::Unauthorized { url: "http://x".into() }, false),
            (TrackerError::NotManaged { identifier: "atrium-acme".into() }, false),
            (TrackerError::ProjectMissing { identifier: "atrium-acme".into() }, false),
            (TrackerError::Setup { url: "http://x".into(), what: "no role".into() }, false),
        ];
        for (error, retryable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
    }
}
