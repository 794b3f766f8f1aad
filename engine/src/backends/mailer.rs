//! The mailer role: the platform's emails (the welcome email) over SMTP,
//! through lettre.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One plain-text email to one person.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub to_name: String,
    pub to_address: String,
    pub subject: String,
    /// May hold a password: never logged (see the redacted `Debug`).
    pub body: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to_address", &self.to_address)
            .field("subject", &self.subject)
            .field("body", &"<redacted>")
            .finish()
    }
}

/// A mail failure, with the relay and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP relay URL cannot be used: {reason}")]
    Relay { reason: String },
    #[error("{address:?} is not an email address: {reason}")]
    Address { address: String, reason: String },
    #[error(
        "the SMTP relay at {relay} did not take the email to {to}; check that the relay runs and accepts mail from here"
    )]
    Send {
        relay: String,
        to: String,
        #[source]
        source: Box<lettre::transport::smtp::Error>,
    },
}

impl MailError {
    /// Whether the same email may go through later.
    pub fn is_retryable(&self) -> bool {
        match self {
            MailError::Send { source, .. } => !source.is_permanent(),
            MailError::Relay { .. } | MailError::Address { .. } => false,
        }
    }
}

/// Sends the platform's emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// A mailer on an SMTP relay: `smtp://host:port` (plain, for local relays and
/// tests), `smtp://…?tls=required` (STARTTLS) or `smtps://…` (TLS), with
/// credentials in the URL when the relay wants them.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `scheme://host:port` of the relay, for messages (never its credentials).
    relay: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay URL may carry a password: only the sender is shown.
        f.debug_struct("SmtpMailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer on the relay at `url`, logging in with `credentials` (user
    /// name, password) when given.
    pub fn new(url: &str, from: &str, credentials: Option<(String, String)>) -> Result<SmtpMailer, MailError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| MailError::Relay { reason: error.to_string() })?
            .timeout(Some(std::time::Duration::from_secs(20)));
        if let Some((username, password)) = credentials {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(username, password));
        }
        let transport = builder.build();
        let relay = match url::Url::parse(url) {
            Ok(parsed) => format!(
                "{}://{}{}",
                parsed.scheme(),
                parsed.host_str().unwrap_or_default(),
                parsed.port().map(|port| format!(":{port}")).unwrap_or_default()
            ),
            Err(_) => "the configured relay".to_owned(),
        };
        let from = from
            .parse::<Mailbox>()
            .map_err(|error| MailError::Address { address: from.to_owned(), reason: error.to_string() })?;
        Ok(SmtpMailer { transport, from, relay })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to = format!("{} <{}>", email.to_name.replace(['<', '>', '"'], ""), email.to_address);
        let to_mailbox = to
            .parse::<Mailbox>()
            .map_err(|error| MailError::Address { address: email.to_address.clone(), reason: error.to_string() })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_mailbox)
            .subject(email.subject.clone())
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|error| MailError::Address { address: email.to_address.clone(), reason: error.to_string() })?;
        self.transport.send(message).await.map(drop).map_err(|source| MailError::Send {
            relay: self.relay.clone(),
            to: email.to_address.clone(),
            source: Box::new(source),
        })
    }
}
