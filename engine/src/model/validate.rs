//! Small validators shared by the resources: emails, dates, display text.

use time::Date;
use time::macros::format_description;

/// Checks an email address well enough to catch typos: one `@`, a non-empty
/// local part, a domain with a dot, no spaces. Delivery is the real test.
pub fn email(value: &str) -> Result<(), String> {
    let bad = || format!("{value:?} is not an email address: write it as name@example.com");
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let Some((local, domain)) = value.split_once('@') else {
        return Err(bad());
    };
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(bad());
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
        for good in ["ops@example.com", "a.b+c@acme.co.uk", "x@d-e.io"] {
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
