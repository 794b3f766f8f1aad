//! Manager passwords: generated or given, hashed, never kept in clear.
//!
//! The registry keeps only a salted SHA-256-crypt hash (`$5$…`). Apps that
//! check passwords against a crypt hash (the `hello` app's basic auth) get
//! the hash itself in their configuration; the clear password exists only in
//! the apply that set it, on its way to the app and the welcome email.

use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

/// SHA-crypt's default rounds, which crypt leaves out of a hash.
const DEFAULT_ROUNDS: &str = "rounds=5000$";

/// `N` random characters from an alphabet without look-alikes (no 0/O,
/// 1/l/I), at least three quarters of them distinct: apps refuse passwords
/// that repeat characters more (Tryton's `password.entropy` is the share of
/// distinct characters, 0.75 by default), and a generated password must
/// never be refused.
pub fn random_text<const N: usize>() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    loop {
        let text: String =
            random_bytes::<N>().iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
        let distinct: std::collections::BTreeSet<char> = text.chars().collect();
        if distinct.len() * 4 >= N * 3 {
            return text;
        }
    }
}

/// A password in clear. Its `Debug` form is redacted so that it never reaches
/// a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(clear: impl Into<String>) -> Password {
        Password(clear.into())
    }

    /// Twenty characters from an alphabet without look-alikes (no 0/O, 1/l/I),
    /// about 116 bits: easy to copy from an email, hard to guess.
    pub fn generate() -> Password {
        Password(random_text::<20>())
    }

    /// The clear text, for the app and the welcome email only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A salted SHA-256-crypt hash in its short form (`$5$salt$…`, 55
    /// characters: the default 5000 rounds left implicit, an 8-character
    /// salt), the form the registry keeps and crypt-based apps read. Short
    /// matters: busybox httpd reads its configuration in lines of at most 159
    /// characters, and a login line holds the manager's email too (up to
    /// [`crate::model::validate::MAX_EMAIL_LENGTH`] characters).
    pub fn hash(&self) -> String {
        let salt = random_bytes::<6>();
        ShaCrypt::SHA256
            .hash_password_with_salt(self.0.as_bytes(), &salt)
            .map(|hash| hash.to_string().replacen(DEFAULT_ROUNDS, "", 1))
            // Hashing fails only for parameters we never pass (bad rounds or version).
            .unwrap_or_default()
    }

    /// Whether `hash` (from [`Password::hash`]) was made from this password.
    pub fn matches(&self, hash: &str) -> bool {
        // Crypt's rule: no rounds field means the default rounds. Hashes made
        // before SHA-256-crypt ($6$, SHA-512) still verify.
        let explicit = match (hash.get(..3), hash.get(3..)) {
            (Some(id @ ("$5$" | "$6$")), Some(rest)) if !rest.starts_with("rounds=") => {
                format!("{id}{DEFAULT_ROUNDS}{rest}")
            }
            _ => hash.to_owned(),
        };
        !hash.is_empty() && ShaCrypt::default().verify_password(self.0.as_bytes(), explicit.as_str()).is_ok()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read as _;
    let mut bytes = [0u8; N];
    // /dev/urandom never blocks and is always there on the Linux hosts we run on.
    let read = std::fs::File::open("/dev/urandom").and_then(|mut urandom| urandom.read_exact(&mut bytes));
    assert!(read.is_ok(), "the kernel's random source /dev/urandom cannot be read");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_only() {
        let password = Password::new("correct horse");
        let hash = password.hash();
        assert!(hash.starts_with("$5$") && !hash.contains("rounds="), "{hash}");
        assert_eq!(hash.len(), 55, "{hash}");
        assert!(password.matches(&hash));
        assert!(!Password::new("correct horse!").matches(&hash));
        assert!(!password.matches(""));
        assert!(!password.matches("not a hash"));
        assert_ne!(hash, password.hash(), "each hash has its own salt");
    }

    #[test]
    fn hashes_made_with_sha512_crypt_still_verify() {
        let password = Password::new("correct horse");
        let salt = random_bytes::<6>();
        let sha512 = ShaCrypt::SHA512.hash_password_with_salt(b"correct horse", &salt).unwrap().to_string();
        let short = sha512.replacen(DEFAULT_ROUNDS, "", 1);
        assert!(short.starts_with("$6$") && password.matches(&short), "{short}");
        assert!(!Password::new("another").matches(&short));
    }

    #[test]
    fn generated_texts_never_repeat_characters_more_than_apps_allow() {
        for _ in 0..2000 {
            let text = random_text::<20>();
            let distinct: std::collections::BTreeSet<char> = text.chars().collect();
            assert!(distinct.len() >= 15, "{text}");
            assert!(text.chars().all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)), "{text}");
        }
    }

    #[test]
    fn generated_passwords_differ_and_are_redacted_in_debug() {
        let (a, b) = (Password::generate(), Password::generate());
        assert_eq!(a.expose().len(), 20);
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
