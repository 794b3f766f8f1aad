//! Small validators shared by the resources: emails, dates, display text.

use time::Date;
use time::macros::format_description;

/// The longest manager email Atrium accepts: every catalog app must take it
/// as a login (busybox httpd, `hello`'s server, reads its login lines of at
/// most 159 characters, which also hold a 55-character password hash).
pub const MAX_EMAIL_LENGTH: usize = 90;

/// Checks an email address that must also work as a login in every catalog
/// app: one `@`; a local part of the characters addresses are made of
/// without quoting (letters, digits and `.!#$%&'*+/=?^_`{|}~-`, never `:`,
/// which separates logins from passwords, nor spaces, quotes, brackets,
/// commas or semicolons); a domain with a dot; at most [`MAX_EMAIL_LENGTH`]
/// characters. Delivery is the real test.
pub fn email(value: &str) -> Result<(), String> {
    let bad =
        |why: &str| format!("{value:?} cannot be the manager's email and login: {why}; write it as name@example.com");
    if value.chars().count() > MAX_EMAIL_LENGTH {
        return Err(bad(&format!("it has more than {MAX_EMAIL_LENGTH} characters, the longest login every app takes")));
    }
    let Some((local, domain)) = value.split_once('@') else {
        return Err(bad("it has no @"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    if !local_ok {
        return Err(bad(
            "the part before @ may hold letters, digits and . ! # $ % & ' * + / = ? ^ _ ` { | } ~ - only (no :, spaces, quotes or brackets)",
        ));
    }
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !domain_ok {
        return Err(bad("the part after @ is not a domain name"));
    }
    Ok(())
}

/// Parses an RFC 3339 full date (`2027-03-31`) from 2000-01-01 to
/// 9999-12-31: dates of the platform's customers, never year 0.
pub fn date(value: &str) -> Result<Date, String> {
    let parsed = Date::parse(value, format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{value:?} is not a date: write it as YYYY-MM-DD (RFC 3339), e.g. \"2027-03-31\""))?;
    if !(2000..=9999).contains(&parsed.year()) {
        return Err(format!("{value:?} is out of range: use a date from 2000-01-01 to 9999-12-31"));
    }
    Ok(parsed)
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(value: Date) -> String {
    value.format(format_description!("[year]-[month]-[day]")).unwrap_or_default()
}

/// Checks free text shown to people (display names): 1 to `max` characters,
/// no control characters, not only spaces.
pub fn display_text(value: &str, max: usize) -> Result<(), String> {
    let count = value.chars().count();
    if value.trim().is_empty() || count > max || value.chars().any(char::is_control) {
        return Err(format!(
            "{value:?} is not usable: write 1 to {max} characters of text without line breaks or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let longest = format!("{}@{}.example.com", "a".repeat(60), "b".repeat(MAX_EMAIL_LENGTH - 60 - 13));
        assert_eq!(longest.len(), MAX_EMAIL_LENGTH);
        for good in ["ops@example.com", "a.b+c@acme.co.uk", "x@d-e.io", "o'brien@acme.ie", longest.as_str()] {
            assert!(email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "ops@example",
            "o ps@example.com",
            "ops@@example.com",
            "ops@-x.com",
            "ops@x..com",
            "a:b@acme.com",
            "\"quoted\"@acme.com",
            "a,b@acme.com",
            ".ops@acme.com",
            "o..ps@acme.com",
            "ops\u{0}@acme.com",
            &format!("{longest}x"),
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert!(date("2027-03-31").is_ok());
        assert!(date("2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2027-13-01",
            "31/03/2027",
            "2027-03-31T00:00:00Z",
            "tomorrow",
            "",
            "0000-01-01",
            "1999-12-31",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
        assert_eq!(format_date(date("2027-03-01").unwrap()), "2027-03-01");
    }

    #[test]
    fn display_texts() {
        assert!(display_text("ACME GmbH", 100).is_ok());
        assert!(display_text("   ", 100).is_err());
        assert!(display_text("a\nb", 100).is_err());
        assert!(display_text(&"x".repeat(101), 100).is_err());
    }
}
