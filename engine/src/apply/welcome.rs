//! The welcome email: what the customer's manager receives when an app of
//! hers is ready: its address, her login and her initial password. It is the
//! only way the generated password leaves the engine.

use crate::backends::mailer::Email;
use crate::catalog::CatalogEntry;
use crate::model::app_instance::AppInstanceSpec;
use crate::model::password::Password;
use crate::model::tenant::TenantRecord;

/// Why the manager gets an email with her password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion<'a> {
    /// The app is ready: a new instance (or a password an earlier email
    /// could not deliver).
    Ready,
    /// A restore put back the app's data as a snapshot taken at `taken`
    /// (RFC 3339) had it, and with it the accounts: her password changed.
    Restored { taken: &'a str },
}

/// The welcome email for one app instance. `addresses` are the app's
/// addresses, best first (its live domains). `password` is the manager's
/// new password, or `None` when it was given in the configuration
/// (`admin_password`) and only the hosting team knows it.
pub fn welcome_email(
    tenant: &TenantRecord,
    instance: &AppInstanceSpec,
    entry: &CatalogEntry,
    addresses: &[String],
    password: Option<&Password>,
) -> Email {
    manager_email(Occasion::Ready, tenant, instance, entry, addresses, password)
}

/// The email with the manager's password for `occasion`: the welcome email,
/// or the one after a restore, which says what happened to her data.
pub fn manager_email(
    occasion: Occasion<'_>,
    tenant: &TenantRecord,
    instance: &AppInstanceSpec,
    entry: &CatalogEntry,
    addresses: &[String],
    password: Option<&Password>,
) -> Email {
    let manager = &tenant.spec.manager;
    let app = capitalized(&entry.name);
    let organisation = &tenant.spec.display_name;
    let login_path = entry.manager_account.login_path.as_deref().unwrap_or("/");
    let (subject, opening) = match occasion {
        Occasion::Ready => {
            (format!("Your {app} for {organisation} is ready"), format!("your {app} for {organisation} is ready."))
        }
        Occasion::Restored { taken } => (
            format!("Your {app} for {organisation} was restored from a backup"),
            format!(
                "your {app} for {organisation} was restored from a backup taken {}: its data is as it was then, \
                 and what was changed in it since is not there. Your hosting team keeps a backup of the data \
                 as it was just before the restore; ask them if you need something from it.\n\n\
                 The restore also brought back the accounts as they were, so your password changed: \
                 use the one below.",
                readable_time(taken)
            ),
        ),
    };
    let mut body = format!("Hello {},\n\n{opening}\n\n", manager.name);
    match addresses {
        [] => body.push_str("Its address follows in a separate message.\n"),
        [only] => body.push_str(&format!("Address: {only}\n")),
        several => {
            body.push_str("Addresses:\n");
            for address in several {
                body.push_str(&format!("  {address}\n"));
            }
        }
    }
    if let Some(first) = addresses.first() {
        body.push_str(&format!("Sign in at: {}{login_path}\n", first.trim_end_matches('/')));
    }
    let password_line = match password {
        Some(password) => format!("Password: {}", password.expose()),
        None => "Password: the one your hosting team set for you (ask them if you do not have it)".to_owned(),
    };
    body.push_str(&format!(
        "\nLogin: {}\n{password_line}\n\nThis account manages {app} for your organisation ({} users). \
         Please change the password after your first sign-in.\n\n-- \nYour hosting team\n",
        entry.manager_account.login_for(&manager.email, &manager.name),
        instance.users
    ));
    Email { to_name: manager.name.clone(), to_address: manager.email.clone(), subject, body }
}

/// An RFC 3339 time as people read it: `2026-12-04 01:31 UTC` (the text
/// itself when it is not one).
fn readable_time(rfc3339: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|moment| moment.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

fn capitalized(name: &str) -> String {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::model::TenantId;
    use crate::model::tenant::{Manager, TenantSpec, TenantStatus, Tier};

    /// ACME GmbH, whose manager Dana Fischer has the address `email`.
    fn acme(email: &str) -> TenantRecord {
        TenantRecord {
            spec: TenantSpec {
                name: TenantId::parse("acme").unwrap(),
                display_name: "ACME GmbH".into(),
                tier: Tier::Business,
                user_quota: 50,
                expires_on: None,
                manager: Manager { email: email.into(), name: "Dana Fischer".into() },
                welcome_email: true,
            },
            status: TenantStatus::Active,
            created_at: "2026-11-23T10:00:00Z".into(),
            owner: "terraform".into(),
        }
    }

    #[test]
    fn the_welcome_email_names_the_address_login_and_password() {
        let tenant = acme("it-lead@acme.example");
        let instance = crate::test_services::hello_spec("acme", "1.1");
        let catalog = Catalog::built_in();
        let email = welcome_email(
            &tenant,
            &instance,
            catalog.get("hello").unwrap(),
            &["https://acme.apps.example.net".to_owned()],
            Some(&Password::new("sample-password-1")),
        );
        assert_eq!(email.to_address, "it-lead@acme.example");
        insta::assert_snapshot!(format!("Subject: {}\n\n{}", email.subject, email.body));
        assert!(!format!("{email:?}").contains("sample-password-1"), "Debug never shows the body");
        // A password given in the configuration is not the email's to send.
        let given = welcome_email(
            &tenant,
            &instance,
            catalog.get("hello").unwrap(),
            &["https://acme.apps.example.net".to_owned()],
            None,
        );
        assert!(given.body.contains("Password: the one your hosting team set for you"), "{}", given.body);
    }

    #[test]
    fn the_email_after_a_restore_says_what_happened_to_her_data_and_password() {
        let tenant = acme("it-lead@acme.example");
        let instance = crate::test_services::hello_spec("acme", "1.1");
        let catalog = Catalog::built_in();
        let email = manager_email(
            Occasion::Restored { taken: "2026-12-04T01:31:20.372414674Z" },
            &tenant,
            &instance,
            catalog.get("redmine").unwrap(),
            &["https://acme.apps.example.net".to_owned()],
            Some(&Password::new("sample-password-2")),
        );
        insta::assert_snapshot!(format!("Subject: {}\n\n{}", email.subject, email.body));
        assert_eq!(readable_time("yesterday"), "yesterday", "a time that is not one is shown as it is");
    }

    #[test]
    fn the_welcome_email_gives_the_login_the_app_made_when_it_is_not_her_email() {
        let tenant = acme("dana+it@acme.example");
        let instance = crate::test_services::hello_spec("acme", "1.1");
        let catalog = Catalog::built_in();
        let address = ["https://acme.apps.example.net".to_owned()];
        let redmine = welcome_email(&tenant, &instance, catalog.get("redmine").unwrap(), &address, None);
        assert!(redmine.body.contains("\nLogin: dana_it@acme.example\n"), "{}", redmine.body);
        let hello = welcome_email(&acme("dana@acme.example"), &instance, catalog.get("hello").unwrap(), &address, None);
        assert!(hello.body.contains("\nLogin: dana@acme.example\n"), "{}", hello.body);
    }
}
