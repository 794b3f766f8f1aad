//! The support tracker role on Redmine's JSON REST API (measured on Redmine 5.0).
//!
//! Redmine's numeric ids are never kept between calls: its SQLite database
//! hands out the id of a deleted project or user again, so every call finds
//! its project by identifier and its user by login first. The ids of the
//! support level field and of the roles, which only an administrator changes,
//! are looked up by name once per `Redmine` and kept.
//!
//! A wrong API key is not refused everywhere: where Redmine does not require a
//! login, it answers as to an anonymous visitor (an empty project list, 404
//! for a private project). Each `Redmine` therefore checks its key once, on
//! `/users/current.json`, before its first real request, and also checks that
//! the key's user is an administrator, without which users cannot be created.
//!
//! Redmine has no conditional writes: each call reads and then writes what
//! differs. Someone changing the same project between the two requests may
//! see their change overwritten; the window is one round trip.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::OnceCell;

use super::tracker::{
    ObservedSupportProject, SUPPORT_LEVEL_FIELD, SupportProject, Tracker, TrackerError, TrackerUser,
    is_managed_description, managed_description, project_identifier,
};
use super::{api_client, send_counted, sensitive_api_key, with_retries};

/// How long one operation may keep retrying 5xx answers and connection
/// failures before it reports the last error.
const RETRY_DEADLINE: Duration = Duration::from_secs(15);

/// A loopback or LAN Redmine answers in well under a second; these only bound a hung server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Redmine's largest page (`limit`); lists longer than this are read page by page.
const PAGE_LIMIT: u64 = 100;

/// Redmine's status of a user who may sign in; 2 (registered) and 3 (locked) may not.
const USER_STATUS_ACTIVE: u8 = 1;

/// One Redmine, reached through its REST API with an administrator's API key.
///
/// Each trait call is one idempotent operation (reads, then the writes that
/// differ) and is repeated whole while it fails with a 5xx answer, 429 or a
/// connection failure, with a backoff from 100 ms doubling to 2 s, for up to
/// about 15 s, before it returns the last error. Repeating the whole operation
/// rather than one request matters for creates: a POST whose answer was lost
/// may have arrived, and the next round reads it back instead of creating a
/// second project or user.
///
/// The API key is sent only in the `X-Redmine-API-Key` header, marked
/// sensitive, and never appears in `Debug` output, errors or logs.
pub struct Redmine {
    /// The base URL, e.g. `http://127.0.0.1:3000` or `https://support.example.net/redmine`.
    url: String,
    /// `None` when the configured key cannot be an HTTP header value: such a
    /// key can never be right, and every call then reports `Unauthorized`.
    api_key: Option<HeaderValue>,
    client: reqwest::Client,
    /// HTTP requests sent, retries included, for tests that count writes.
    api_calls: AtomicU64,
    retry_deadline: Duration,
    /// Set once the key has been seen to belong to an administrator.
    administrator_checked: OnceCell<()>,
    support_level_field_id: OnceCell<u64>,
    /// Every role's id by its name.
    role_ids: OnceCell<BTreeMap<String, u64>>,
}

impl fmt::Debug for Redmine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Redmine")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("api_calls", &self.api_calls())
            .finish_non_exhaustive()
    }
}

/// Which users a lookup by login considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserStatusFilter {
    /// Users who may sign in: Redmine's default listing.
    Active,
    /// Locked and registered users as well, which Redmine lists only when asked with `status=`.
    Any,
}

impl Redmine {
    /// A client for the Redmine at `url` (its base URL). Nothing is sent until
    /// the first call, so a wrong URL or key shows up as that call's error.
    pub fn new(url: &str, api_key: &str) -> Redmine {
        let api_key = sensitive_api_key(api_key);
        let client = api_client(CONNECT_TIMEOUT, REQUEST_TIMEOUT);
        Redmine {
            url: url.trim_end_matches('/').to_owned(),
            api_key,
            client,
            api_calls: AtomicU64::new(0),
            retry_deadline: RETRY_DEADLINE,
            administrator_checked: OnceCell::new(),
            support_level_field_id: OnceCell::new(),
            role_ids: OnceCell::new(),
        }
    }

    /// Shortens (or lengthens) how long each call keeps retrying transient
    /// failures; tests of an unreachable server use this to fail quickly.
    pub fn with_retry_deadline(mut self, retry_deadline: Duration) -> Redmine {
        self.retry_deadline = retry_deadline;
        self
    }

    /// How many HTTP requests this client has sent, retries included: lets
    /// tests check that an unchanged project costs one read and no write.
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    /// The URL of `segments` under the base URL, e.g. `["projects", "atrium-acme.json"]`, with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, TrackerError> {
        let connect_error =
            |source: Box<dyn std::error::Error + Send + Sync>| TrackerError::Connect { url: self.url.clone(), source };
        let mut url = Url::parse(&self.url).map_err(|error| connect_error(Box::new(error)))?;
        url.path_segments_mut()
            .map_err(|()| connect_error("the support tracker's URL cannot carry a path".into()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends one request and returns the answer's body, or `None` when Redmine
    /// answers 404; every other failure becomes a `TrackerError`.
    async fn send(
        &self,
        method: Method,
        url: Url,
        operation: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<String>, TrackerError> {
        let Some(api_key) = &self.api_key else {
            return Err(TrackerError::Unauthorized { url: self.url.clone() });
        };
        let connect_error =
            |source: reqwest::Error| TrackerError::Connect { url: self.url.clone(), source: Box::new(source) };
        let request = self.client.request(method, url).header("X-Redmine-API-Key", api_key.clone());
        let (status, text) = send_counted(request, body, &self.api_calls).await.map_err(connect_error)?;
        match status {
            _ if status.is_success() => Ok(Some(text)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(TrackerError::Unauthorized { url: self.url.clone() }),
            _ => Err(TrackerError::Api {
                operation: operation.to_owned(),
                status: status.as_u16(),
                message: api_error_message(status, &text),
            }),
        }
    }

    /// GETs one document and returns the object under `key` (Redmine wraps
    /// each answer, e.g. `{"project": {…}}`); `None` on 404.
    async fn read_document<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        key: &str,
        operation: &str,
    ) -> Result<Option<T>, TrackerError> {
        let url = self.url(segments, query)?;
        match self.send(Method::GET, url, operation, None).await? {
            Some(text) => wrapped_document(&text, key, operation).map(Some),
            None => Ok(None),
        }
    }

    /// Every item of a list under `key`, reading page after page; `None` on 404.
    async fn read_list<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        key: &str,
        operation: &str,
    ) -> Result<Option<Vec<T>>, TrackerError> {
        let limit = PAGE_LIMIT.to_string();
        let mut items = Vec::new();
        loop {
            let offset = items.len().to_string();
            let mut paged_query = query.to_vec();
            paged_query.extend([("offset", offset.as_str()), ("limit", limit.as_str())]);
            let url = self.url(segments, &paged_query)?;
            let Some(text) = self.send(Method::GET, url, operation, None).await? else {
                return Ok(None);
            };
            let page: ListPage<T> = list_page(&text, key, operation)?;
            let page_was_empty = page.items.is_empty();
            items.extend(page.items);
            // Lists without paging (roles, custom fields) have no total and come whole.
            if page_was_empty || page.total_count.is_none_or(|total| items.len() as u64 >= total) {
                return Ok(Some(items));
            }
        }
    }

    /// Sends a write and returns the answer's body; `None` on 404.
    async fn write(
        &self,
        method: Method,
        segments: &[&str],
        operation: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<String>, TrackerError> {
        let url = self.url(segments, &[])?;
        self.send(method, url, operation, body).await
    }

    /// Checks, once per `Redmine`, that the key is accepted and belongs to an
    /// administrator (see the module's comment for why).
    async fn check_administrator(&self) -> Result<(), TrackerError> {
        let operation = "check the API key";
        self.administrator_checked
            .get_or_try_init(|| async {
                let user: CurrentUserDocument = self
                    .read_document(&["users", "current.json"], &[], "user", operation)
                    .await?
                    .ok_or_else(|| self.setup_error("it has no /users/current.json; is it Redmine 5 or later?"))?;
                if user.admin {
                    Ok(())
                } else {
                    Err(self.setup_error(&format!(
                        "the API key belongs to {:?}, who is not an administrator; Atrium creates users and needs \
                         an administrator's key",
                        user.login
                    )))
                }
            })
            .await
            .map(|_| ())
    }

    fn setup_error(&self, what: &str) -> TrackerError {
        TrackerError::Setup { url: self.url.clone(), what: what.to_owned() }
    }

    /// The id of the project custom field [`SUPPORT_LEVEL_FIELD`], looked up once.
    async fn support_level_field_id(&self) -> Result<u64, TrackerError> {
        self.support_level_field_id
            .get_or_try_init(|| async {
                let operation = "read the custom fields";
                let fields: Vec<CustomFieldDocument> =
                    self.read_list(&["custom_fields.json"], &[], "custom_fields", operation).await?.unwrap_or_default();
                support_level_field_id(&fields).ok_or_else(|| {
                    self.setup_error(&format!(
                        "it has no project custom field named {SUPPORT_LEVEL_FIELD:?}; create one of format list, \
                         with the support levels as its values, under Administration → Custom fields"
                    ))
                })
            })
            .await
            .copied()
    }

    /// The id of the role named `role`; the roles are read once.
    async fn role_id(&self, role: &str) -> Result<u64, TrackerError> {
        let role_ids = self
            .role_ids
            .get_or_try_init(|| async {
                let roles: Vec<RoleDocument> =
                    self.read_list(&["roles.json"], &[], "roles", "read the roles").await?.unwrap_or_default();
                Ok::<_, TrackerError>(roles.into_iter().map(|role| (role.name, role.id)).collect())
            })
            .await?;
        role_ids.get(role).copied().ok_or_else(|| {
            let known: Vec<&str> = role_ids.keys().map(String::as_str).collect();
            self.setup_error(&format!("it has no role named {role:?} (its roles: {})", known.join(", ")))
        })
    }

    /// The tenant's project, refused when it is not Atrium's; `None` when it does not exist.
    async fn read_managed_project(&self, tenant: &str) -> Result<Option<ProjectDocument>, TrackerError> {
        let identifier = project_identifier(tenant);
        let operation = format!("read project {identifier}");
        let file = format!("{identifier}.json");
        let read = self.read_document::<ProjectDocument>(&["projects", &file], &[], "project", &operation).await;
        let Some(project) = read.map_err(archived_project_explained)? else {
            return Ok(None);
        };
        if !is_managed_description(project.description.as_deref().unwrap_or_default(), tenant) {
            return Err(TrackerError::NotManaged { identifier });
        }
        Ok(Some(project))
    }

    /// Every membership of the project `identifier`; `None` when the project is gone.
    async fn read_memberships(&self, identifier: &str) -> Result<Option<Vec<MembershipDocument>>, TrackerError> {
        let operation = format!("list the members of project {identifier}");
        self.read_list(&["projects", identifier, "memberships.json"], &[], "memberships", &operation).await
    }

    /// The id of the user whose login is `login`, among the users `filter` lets through.
    async fn find_user_id(&self, login: &str, filter: UserStatusFilter) -> Result<Option<u64>, TrackerError> {
        let operation = format!("look up user {login}");
        let status = match filter {
            UserStatusFilter::Active => USER_STATUS_ACTIVE.to_string(),
            UserStatusFilter::Any => String::new(),
        };
        // `name` matches logins, email addresses and names by substring; only
        // the exact login counts.
        let users: Vec<UserDocument> = self
            .read_list(&["users.json"], &[("name", login), ("status", &status)], "users", &operation)
            .await?
            .unwrap_or_default();
        Ok(user_id_with_login(&users, login))
    }

    /// The id of the user `user.login`, made or unlocked as needed so that they can sign in.
    async fn ensure_user(&self, user: &TrackerUser) -> Result<u64, TrackerError> {
        if let Some(user_id) = self.find_user_id(&user.login, UserStatusFilter::Active).await? {
            return Ok(user_id);
        }
        if let Some(user_id) = self.find_user_id(&user.login, UserStatusFilter::Any).await? {
            let operation = format!("unlock user {}", user.login);
            let file = format!("{user_id}.json");
            let unlock = json!({ "user": { "status": USER_STATUS_ACTIVE } });
            self.write(Method::PUT, &["users", &file], &operation, Some(&unlock)).await?.ok_or_else(|| {
                TrackerError::Api { operation, status: 404, message: "the user was deleted meanwhile".to_owned() }
            })?;
            return Ok(user_id);
        }
        let operation = format!("create user {}", user.login);
        let text = self.write(Method::POST, &["users.json"], &operation, Some(&user_create_body(user))).await?;
        let text = text.ok_or_else(|| TrackerError::Api {
            operation: operation.clone(),
            status: 404,
            message: "Redmine has no /users.json".to_owned(),
        })?;
        let created: UserDocument = wrapped_document(&text, "user", &operation)?;
        Ok(created.id)
    }

    async fn ensure_project_once(&self, project: &SupportProject) -> Result<(), TrackerError> {
        self.check_administrator().await?;
        let field_id = self.support_level_field_id().await?;
        let identifier = project_identifier(&project.tenant);
        let Some(existing) = self.read_managed_project(&project.tenant).await? else {
            let operation = format!("create project {identifier}");
            let body = project_create_body(project, field_id);
            self.write(Method::POST, &["projects.json"], &operation, Some(&body)).await?;
            return Ok(());
        };
        if existing.name == project.name && support_level(&existing, field_id).as_deref() == Some(&project.level) {
            return Ok(());
        }
        let operation = format!("update project {identifier}");
        let file = format!("{identifier}.json");
        let body = project_update_body(project, field_id);
        self.write(Method::PUT, &["projects", &file], &operation, Some(&body)).await?;
        Ok(())
    }

    async fn grant_access_once(&self, tenant: &str, user: &TrackerUser, role: &str) -> Result<(), TrackerError> {
        self.check_administrator().await?;
        let role_id = self.role_id(role).await?;
        let identifier = project_identifier(tenant);
        let project_missing = || TrackerError::ProjectMissing { identifier: identifier.clone() };
        self.read_managed_project(tenant).await?.ok_or_else(project_missing)?;
        let user_id = self.ensure_user(user).await?;
        let memberships = self.read_memberships(&identifier).await?.ok_or_else(project_missing)?;
        match memberships.iter().find(|membership| membership.user_id() == Some(user_id)) {
            Some(membership) if direct_role_ids(membership) == [role_id] => Ok(()),
            Some(membership) => {
                let operation = format!("give {} the role {role} in project {identifier}", user.login);
                let file = format!("{}.json", membership.id);
                let body = json!({ "membership": { "role_ids": [role_id] } });
                self.write(Method::PUT, &["memberships", &file], &operation, Some(&body)).await?;
                Ok(())
            }
            None => {
                let operation = format!("add {} to project {identifier}", user.login);
                let body = json!({ "membership": { "user_id": user_id, "role_ids": [role_id] } });
                self.write(Method::POST, &["projects", &identifier, "memberships.json"], &operation, Some(&body))
                    .await?
                    .ok_or_else(project_missing)?;
                Ok(())
            }
        }
    }

    async fn revoke_access_once(&self, tenant: &str, login: &str) -> Result<(), TrackerError> {
        self.check_administrator().await?;
        let identifier = project_identifier(tenant);
        let project = self.read_managed_project(tenant).await?;
        let Some(user_id) = self.find_user_id(login, UserStatusFilter::Any).await? else {
            return Ok(());
        };
        if project.is_some()
            && let Some(memberships) = self.read_memberships(&identifier).await?
            && let Some(membership) = memberships.iter().find(|membership| membership.user_id() == Some(user_id))
        {
            let operation = format!("remove {login} from project {identifier}");
            let file = format!("{}.json", membership.id);
            self.write(Method::DELETE, &["memberships", &file], &operation, None).await?;
        }
        let operation = format!("read user {login}");
        let file = format!("{user_id}.json");
        let Some(user) = self
            .read_document::<UserDocument>(&["users", &file], &[("include", "memberships")], "user", &operation)
            .await?
        else {
            return Ok(());
        };
        // The login is compared again because a user deleted meanwhile may have
        // left their id to someone else.
        if user.admin || !user.memberships.is_empty() || !user.login.eq_ignore_ascii_case(login) {
            return Ok(());
        }
        let operation = format!("delete user {login}");
        self.write(Method::DELETE, &["users", &file], &operation, None).await?;
        Ok(())
    }

    async fn remove_project_once(&self, tenant: &str) -> Result<(), TrackerError> {
        self.check_administrator().await?;
        if self.read_managed_project(tenant).await?.is_none() {
            return Ok(());
        }
        let identifier = project_identifier(tenant);
        let operation = format!("delete project {identifier}");
        let file = format!("{identifier}.json");
        self.write(Method::DELETE, &["projects", &file], &operation, None).await?;
        Ok(())
    }

    async fn observe_once(&self, tenant: &str) -> Result<Option<ObservedSupportProject>, TrackerError> {
        self.check_administrator().await?;
        let field_id = self.support_level_field_id().await?;
        let Some(project) = self.read_managed_project(tenant).await? else {
            return Ok(None);
        };
        let identifier = project_identifier(tenant);
        let Some(memberships) = self.read_memberships(&identifier).await? else {
            return Ok(None);
        };
        // Memberships name users by id and display name only; the login comes
        // from each user's own document.
        let logins = futures_util::future::try_join_all(
            memberships.iter().filter_map(MembershipDocument::user_id).map(|user_id| self.user_login(user_id)),
        )
        .await?;
        let mut member_logins: Vec<String> = logins.into_iter().flatten().collect();
        member_logins.sort();
        Ok(Some(ObservedSupportProject { level: support_level(&project, field_id), name: project.name, member_logins }))
    }

    /// The login of the user `user_id`; `None` when the user is gone.
    async fn user_login(&self, user_id: u64) -> Result<Option<String>, TrackerError> {
        let operation = format!("read user {user_id}");
        let file = format!("{user_id}.json");
        let user: Option<UserDocument> = self.read_document(&["users", &file], &[], "user", &operation).await?;
        Ok(user.map(|user| user.login))
    }
}

#[async_trait]
impl Tracker for Redmine {
    async fn ensure_project(&self, project: &SupportProject) -> Result<(), TrackerError> {
        with_retries(self.retry_deadline, || self.ensure_project_once(project)).await
    }

    async fn grant_access(&self, tenant: &str, user: &TrackerUser, role: &str) -> Result<(), TrackerError> {
        with_retries(self.retry_deadline, || self.grant_access_once(tenant, user, role)).await
    }

    async fn revoke_access(&self, tenant: &str, login: &str) -> Result<(), TrackerError> {
        with_retries(self.retry_deadline, || self.revoke_access_once(tenant, login)).await
    }

    async fn remove_project(&self, tenant: &str) -> Result<(), TrackerError> {
        with_retries(self.retry_deadline, || self.remove_project_once(tenant)).await
    }

    async fn observe(&self, tenant: &str) -> Result<Option<ObservedSupportProject>, TrackerError> {
        with_retries(self.retry_deadline, || self.observe_once(tenant)).await
    }
}

/// The part of Redmine's project document that Atrium reads.
#[derive(Debug, Deserialize)]
struct ProjectDocument {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    custom_fields: Vec<CustomValueDocument>,
}

/// A custom field's value on a project: a string, a list of strings for
/// fields that take several values, or null.
#[derive(Debug, Deserialize)]
struct CustomValueDocument {
    id: u64,
    #[serde(default)]
    value: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct CustomFieldDocument {
    id: u64,
    name: String,
    /// `project`, `issue`, `user`, …: what kind of object the field belongs to.
    customized_type: String,
}

#[derive(Debug, Deserialize)]
struct RoleDocument {
    id: u64,
    name: String,
}

/// A user as `/users.json`, `/users/ID.json` and a user creation answer give it.
#[derive(Debug, Deserialize)]
struct UserDocument {
    id: u64,
    login: String,
    /// Shown to administrators only, which Atrium always is.
    #[serde(default)]
    admin: bool,
    /// Present only when asked for with `include=memberships`.
    #[serde(default)]
    memberships: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct CurrentUserDocument {
    login: String,
    #[serde(default)]
    admin: bool,
}

/// One membership of a project: of a user, or of a group (`group` instead of `user`).
#[derive(Debug, Deserialize)]
struct MembershipDocument {
    id: u64,
    #[serde(default)]
    user: Option<PrincipalDocument>,
    #[serde(default)]
    roles: Vec<MembershipRoleDocument>,
}

impl MembershipDocument {
    /// The member user's id; `None` for a group's membership.
    fn user_id(&self) -> Option<u64> {
        self.user.as_ref().map(|user| user.id)
    }
}

#[derive(Debug, Deserialize)]
struct PrincipalDocument {
    id: u64,
}

#[derive(Debug, Deserialize)]
struct MembershipRoleDocument {
    id: u64,
    /// `true` for a role the user has through a group, which the membership
    /// itself cannot change.
    #[serde(default)]
    inherited: bool,
}

/// The body of Redmine's 422 answers.
#[derive(Debug, Deserialize)]
struct ErrorsDocument {
    errors: Vec<String>,
}

/// One page of a list answer: the items under the list's key and, for lists
/// that Redmine pages, how many there are in all.
struct ListPage<T> {
    items: Vec<T>,
    total_count: Option<u64>,
}

fn unreadable_answer(operation: &str, what: &str, error: impl fmt::Display) -> TrackerError {
    TrackerError::Api {
        operation: operation.to_owned(),
        status: 200,
        message: format!("the answer is not {what}: {error}"),
    }
}

/// The object under `key` of a JSON answer such as `{"project": {…}}`.
fn wrapped_document<T: DeserializeOwned>(text: &str, key: &str, operation: &str) -> Result<T, TrackerError> {
    let mut answer: serde_json::Value =
        serde_json::from_str(text).map_err(|error| unreadable_answer(operation, "JSON", error))?;
    let document = answer.get_mut(key).map(serde_json::Value::take).unwrap_or_default();
    serde_json::from_value(document).map_err(|error| unreadable_answer(operation, &format!("a {key} document"), error))
}

/// The items under `key` and the `total_count` of a list answer such as
/// `{"users": […], "total_count": 3, "offset": 0, "limit": 100}`.
fn list_page<T: DeserializeOwned>(text: &str, key: &str, operation: &str) -> Result<ListPage<T>, TrackerError> {
    let mut answer: serde_json::Value =
        serde_json::from_str(text).map_err(|error| unreadable_answer(operation, "JSON", error))?;
    let total_count = answer.get("total_count").and_then(serde_json::Value::as_u64);
    let items = answer.get_mut(key).map(serde_json::Value::take).unwrap_or_else(|| json!([]));
    let items = serde_json::from_value(items)
        .map_err(|error| unreadable_answer(operation, &format!("a list of {key}"), error))?;
    Ok(ListPage { items, total_count })
}

/// Redmine's own explanation from an error answer: its `errors`, joined, or
/// else the status's name (Redmine's 403 and 404 answers have no body, and
/// its 500 answer is an HTML page not worth quoting).
fn api_error_message(status: StatusCode, body: &str) -> String {
    match serde_json::from_str::<ErrorsDocument>(body) {
        Ok(document) if !document.errors.is_empty() => document.errors.join("; "),
        _ => format!("{} without an explanation", status.canonical_reason().unwrap_or("an unknown status")),
    }
}

/// Redmine answers 403 without a body, even to an administrator, for a
/// project that someone archived; this says so and what to do about it.
fn archived_project_explained(error: TrackerError) -> TrackerError {
    match error {
        TrackerError::Api { operation, status: 403, .. } => TrackerError::Api {
            operation,
            status: 403,
            message: "the project is archived (Redmine hides archived projects even from administrators); \
                      unarchive it under Administration → Projects"
                .to_owned(),
        },
        other => other,
    }
}

/// The id of the project custom field named [`SUPPORT_LEVEL_FIELD`].
fn support_level_field_id(fields: &[CustomFieldDocument]) -> Option<u64> {
    fields
        .iter()
        .find(|field| field.customized_type == "project" && field.name == SUPPORT_LEVEL_FIELD)
        .map(|field| field.id)
}

/// The project's support level; `None` when the field is empty or missing.
fn support_level(project: &ProjectDocument, field_id: u64) -> Option<String> {
    let value = &project.custom_fields.iter().find(|field| field.id == field_id)?.value;
    let level = match value {
        serde_json::Value::String(level) => level.as_str(),
        serde_json::Value::Array(levels) => levels.first()?.as_str()?,
        _ => return None,
    };
    (!level.is_empty()).then(|| level.to_owned())
}

/// The id of the user whose login is `login`. Redmine keeps logins unique
/// regardless of case, so they are compared that way.
fn user_id_with_login(users: &[UserDocument], login: &str) -> Option<u64> {
    users.iter().find(|user| user.login.eq_ignore_ascii_case(login)).map(|user| user.id)
}

/// The ids of the roles the membership itself holds (not those through a group), sorted.
fn direct_role_ids(membership: &MembershipDocument) -> Vec<u64> {
    let mut role_ids: Vec<u64> = membership.roles.iter().filter(|role| !role.inherited).map(|role| role.id).collect();
    role_ids.sort_unstable();
    role_ids.dedup();
    role_ids
}

fn support_level_values(project: &SupportProject, field_id: u64) -> serde_json::Value {
    json!([{ "id": field_id, "value": project.level }])
}

/// A new private project: only its members and administrators may see a
/// customer's tickets, whatever Redmine's default for new projects says.
fn project_create_body(project: &SupportProject, field_id: u64) -> serde_json::Value {
    json!({ "project": {
        "name": project.name,
        "identifier": project_identifier(&project.tenant),
        "description": managed_description(&project.tenant),
        "is_public": false,
        "inherit_members": false,
        "custom_fields": support_level_values(project, field_id),
    }})
}

/// The name and support level of an existing project; its description, which
/// people may have added notes to, stays as it is.
fn project_update_body(project: &SupportProject, field_id: u64) -> serde_json::Value {
    json!({ "project": { "name": project.name, "custom_fields": support_level_values(project, field_id) } })
}

/// A new user with a password nobody knows: they set their own through
/// "Lost password", and no password travels through Atrium.
fn user_create_body(user: &TrackerUser) -> serde_json::Value {
    json!({ "user": {
        "login": user.login,
        "mail": user.email,
        "firstname": user.first_name,
        "lastname": user.last_name,
        "generate_password": true,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_document(answer: serde_json::Value) -> ProjectDocument {
        wrapped_document(&answer.to_string(), "project", "read project").expect("a project document")
    }

    fn support_project(level: &str) -> SupportProject {
        SupportProject { tenant: "acme".into(), name: "Acme GmbH".into(), level: level.into() }
    }

    #[test]
    fn the_support_level_is_read_from_the_field_with_the_looked_up_id() {
        let cases = [
            (json!([{"id": 4, "name": "Support level", "value": "premium_24x7"}]), Some("premium_24x7")),
            (
                json!([{"id": 2, "name": "Other", "value": "x"}, {"id": 4, "value": "standard_8x5"}]),
                Some("standard_8x5"),
            ),
            (json!([{"id": 4, "name": "Support level", "value": ""}]), None),
            (json!([{"id": 4, "name": "Support level", "value": null}]), None),
            (
                json!([{"id": 4, "name": "Support level", "multiple": true, "value": ["premium_24x7"]}]),
                Some("premium_24x7"),
            ),
            (json!([{"id": 4, "name": "Support level", "multiple": true, "value": []}]), None),
            (json!([{"id": 2, "name": "Support level", "value": "premium_24x7"}]), None),
            (json!([]), None),
        ];
        for (custom_fields, expected) in cases {
            let project =
                project_document(json!({"project": {"id": 1, "name": "Acme", "custom_fields": custom_fields}}));
            assert_eq!(support_level(&project, 4).as_deref(), expected, "custom fields {custom_fields}");
        }
        let without_fields = project_document(json!({"project": {"id": 1, "name": "Acme", "description": null}}));
        assert_eq!(support_level(&without_fields, 4), None);
        assert_eq!(without_fields.description, None);
    }

    #[test]
    fn only_the_project_field_named_support_level_is_ours() {
        let check = |fields: serde_json::Value, expected: Option<u64>| {
            let fields: Vec<CustomFieldDocument> = serde_json::from_value(fields.clone()).unwrap();
            assert_eq!(support_level_field_id(&fields), expected, "{fields:?}");
        };
        check(
            json!([{"id": 1, "name": "Support level", "customized_type": "project", "field_format": "list"}]),
            Some(1),
        );
        check(
            json!([{"id": 1, "name": "Support level", "customized_type": "issue"},
                   {"id": 7, "name": "Support level", "customized_type": "project"}]),
            Some(7),
        );
        check(json!([{"id": 1, "name": "support level", "customized_type": "project"}]), None);
        check(json!([]), None);
    }

    #[test]
    fn projects_are_created_private_with_atriums_description_and_updated_without_it() {
        let project = support_project("premium_24x7");
        assert_eq!(
            project_create_body(&project, 4),
            json!({"project": {
                "name": "Acme GmbH",
                "identifier": "atrium-acme",
                "description": managed_description("acme"),
                "is_public": false,
                "inherit_members": false,
                "custom_fields": [{"id": 4, "value": "premium_24x7"}],
            }})
        );
        assert_eq!(
            project_update_body(&project, 4),
            json!({"project": {"name": "Acme GmbH", "custom_fields": [{"id": 4, "value": "premium_24x7"}]}})
        );
    }

    #[test]
    fn users_are_created_with_a_generated_password() {
        let user = TrackerUser::from_manager("dana@acme.test", "Dana Fischer");
        assert_eq!(
            user_create_body(&user),
            json!({"user": {
                "login": "dana@acme.test",
                "mail": "dana@acme.test",
                "firstname": "Dana",
                "lastname": "Fischer",
                "generate_password": true,
            }})
        );
    }

    #[test]
    fn users_are_found_by_their_exact_login_only() {
        let users: Vec<UserDocument> = serde_json::from_value(json!([
            {"id": 5, "login": "dana@acme.test.example", "firstname": "Dana"},
            {"id": 6, "login": "Dana@Acme.Test", "firstname": "Dana"},
            {"id": 7, "login": "x-dana@acme.test"},
        ]))
        .unwrap();
        let cases =
            [("dana@acme.test", Some(6)), ("DANA@ACME.TEST", Some(6)), ("x-dana@acme.test", Some(7)), ("dana", None)];
        for (login, expected) in cases {
            assert_eq!(user_id_with_login(&users, login), expected, "login {login:?}");
        }
    }

    #[test]
    fn memberships_name_users_or_groups_and_roles_of_their_own_or_inherited() {
        let page: ListPage<MembershipDocument> = list_page(
            &json!({"memberships": [
                {"id": 1, "project": {"id": 1, "name": "Acme"}, "user": {"id": 5, "name": "Dana Fischer"},
                 "roles": [{"id": 5, "name": "Reporter"}]},
                {"id": 2, "project": {"id": 1, "name": "Acme"}, "group": {"id": 9, "name": "Staff"},
                 "roles": [{"id": 4, "name": "Developer"}]},
                {"id": 3, "project": {"id": 1, "name": "Acme"}, "user": {"id": 6, "name": "Kim Lee"},
                 "roles": [{"id": 5, "name": "Reporter"}, {"id": 4, "name": "Developer", "inherited": true},
                           {"id": 3, "name": "Manager"}]},
            ], "total_count": 3, "offset": 0, "limit": 100})
            .to_string(),
            "memberships",
            "list",
        )
        .unwrap();
        assert_eq!(page.total_count, Some(3));
        let users: Vec<Option<u64>> = page.items.iter().map(MembershipDocument::user_id).collect();
        assert_eq!(users, vec![Some(5), None, Some(6)]);
        let roles: Vec<Vec<u64>> = page.items.iter().map(direct_role_ids).collect();
        assert_eq!(roles, vec![vec![5], vec![4], vec![3, 5]]);
    }

    #[test]
    fn lists_without_paging_have_no_total_and_odd_answers_are_errors() {
        let roles: ListPage<RoleDocument> =
            list_page(r#"{"roles": [{"id": 3, "name": "Manager"}]}"#, "roles", "read the roles").unwrap();
        assert_eq!((roles.items.len(), roles.total_count), (1, None));
        let empty: ListPage<RoleDocument> = list_page("{}", "roles", "read the roles").unwrap();
        assert!(empty.items.is_empty());

        let cases = ["<html>", r#"{"roles": {"id": 3}}"#, r#"{"roles": [{"name": "Manager"}]}"#];
        for answer in cases {
            let error = list_page::<RoleDocument>(answer, "roles", "read the roles").map(|_| ()).unwrap_err();
            assert!(matches!(&error, TrackerError::Api { status: 200, .. }), "{answer}: {error}");
        }
        let missing = wrapped_document::<UserDocument>("{}", "user", "create user").unwrap_err();
        assert!(missing.to_string().contains("not a user document"), "{missing}");
    }

    #[test]
    fn error_messages_are_redmines_own_words() {
        let cases = [
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"errors":["Identifier has already been taken"]}"#,
                "Identifier has already been taken",
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"errors":["Login is invalid","Email has already been taken"]}"#,
                "Login is invalid; Email has already been taken",
            ),
            (StatusCode::FORBIDDEN, "", "Forbidden without an explanation"),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!DOCTYPE html><html>…",
                "Internal Server Error without an explanation",
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, r#"{"errors":[]}"#, "Unprocessable Entity without an explanation"),
        ];
        for (status, body, expected) in cases {
            assert_eq!(api_error_message(status, body), expected, "{status} {body:?}");
        }
    }

    #[test]
    fn urls_join_the_base_url_path_and_query() {
        let check = |base: &str, segments: &[&str], query: &[(&str, &str)], expected: &str| {
            let redmine = Redmine::new(base, "key");
            assert_eq!(redmine.url(segments, query).unwrap().as_str(), expected, "{base} {segments:?} {query:?}");
        };
        check(
            "http://127.0.0.1:3000",
            &["projects", "atrium-acme.json"],
            &[],
            "http://127.0.0.1:3000/projects/atrium-acme.json",
        );
        check("http://127.0.0.1:3000/", &["roles.json"], &[], "http://127.0.0.1:3000/roles.json");
        check(
            "https://support.example.net/redmine",
            &["users.json"],
            &[("name", "dana+x@acme.test"), ("status", "")],
            "https://support.example.net/redmine/users.json?name=dana%2Bx%40acme.test&status=",
        );
        assert!(matches!(
            Redmine::new("not a url", "key").url(&["roles.json"], &[]),
            Err(TrackerError::Connect { .. })
        ));
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let redmine = Redmine::new("http://127.0.0.1:3000", "very-secret-key");
        let debug = format!("{redmine:?}");
        assert!(!debug.contains("very-secret-key"), "{debug}");
        assert!(debug.contains("<redacted>") && debug.contains("127.0.0.1:3000"), "{debug}");
    }
}
