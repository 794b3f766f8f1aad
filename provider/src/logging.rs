//! Logs for Terraform: JSON lines on stderr in go-hclog's shape
//! (`@level`, `@message`, `@module`, `@timestamp`), which go-plugin parses and
//! filters by `TF_LOG` / `TF_LOG_PROVIDER`.
//!
//! Nothing in the provider logs configuration values or secrets; fields are
//! names, counts and redacted URLs only.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

/// The level from `TF_LOG_PROVIDER` (or `TF_LOG`): trace, debug, info, warn,
/// error or off; `json` (Terraform's raw form) means trace. Unset: warn.
pub fn level_from_environment(provider_level: Option<&str>, global_level: Option<&str>) -> Option<Level> {
    let text = provider_level.filter(|v| !v.is_empty()).or(global_level.filter(|v| !v.is_empty()));
    match text.map(str::to_ascii_lowercase).as_deref() {
        None => Some(Level::WARN),
        Some("trace" | "json") => Some(Level::TRACE),
        Some("debug") => Some(Level::DEBUG),
        Some("info") => Some(Level::INFO),
        Some("warn") => Some(Level::WARN),
        Some("error") => Some(Level::ERROR),
        Some("off") => None,
        Some(_) => Some(Level::TRACE),
    }
}

/// Installs the JSON-line logger for this process.
pub fn install() {
    let level = level_from_environment(
        std::env::var("TF_LOG_PROVIDER").ok().as_deref(),
        std::env::var("TF_LOG").ok().as_deref(),
    );
    let layer = HclogLayer { max_level: level };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

struct HclogLayer {
    max_level: Option<Level>,
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // Our own events at the requested level; libraries' (h2, rustls, sqlx)
        // only from warn up, or a debug log drowns in frame dumps.
        let ours = metadata.target().starts_with("atrium");
        self.max_level.is_some_and(|max| *metadata.level() <= if ours { max } else { max.min(Level::WARN) })
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let line = format_event(event);
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
    }
}

/// One hclog JSON line (with its newline) for an event.
fn format_event(event: &Event<'_>) -> String {
    let mut fields = FieldCollector::default();
    event.record(&mut fields);
    let mut object = serde_json::Map::new();
    let level = match *event.metadata().level() {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    };
    object.insert("@level".into(), level.into());
    object.insert("@message".into(), fields.message.into());
    object.insert("@module".into(), "atrium".into());
    object.insert("@timestamp".into(), hclog_timestamp().into());
    for (key, value) in fields.fields {
        object.insert(key, value);
    }
    let mut line = serde_json::Value::Object(object).to_string();
    line.push('\n');
    line
}

/// `2006-01-02T15:04:05.000000Z07:00`, the timestamp form hclog parses.
fn hclog_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut text = String::with_capacity(32);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    );
    text
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    fields: Vec<(String, serde_json::Value)>,
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.push((field.name().to_owned(), value.into()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name().to_owned(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name().to_owned(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name().to_owned(), value.into()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name().to_owned(), text.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_log_levels_map_to_tracing_levels() {
        assert_eq!(level_from_environment(None, None), Some(Level::WARN));
        assert_eq!(level_from_environment(None, Some("DEBUG")), Some(Level::DEBUG));
        assert_eq!(level_from_environment(Some("error"), Some("trace")), Some(Level::ERROR));
        assert_eq!(level_from_environment(Some("off"), None), None);
        assert_eq!(level_from_environment(Some(""), Some("json")), Some(Level::TRACE));
    }

    #[test]
    fn events_become_hclog_json_lines() {
        use std::sync::{Arc, Mutex};
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        struct Capture(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Capture {
            fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                self.0.lock().unwrap().push(format_event(event));
            }
        }
        let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&lines)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(tenant = "acme", count = 3, "tenant created");
        });
        let line = lines.lock().unwrap()[0].clone();
        assert!(line.ends_with('\n'));
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["@level"], "info");
        assert_eq!(json["@message"], "tenant created");
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["count"], 3);
        let timestamp = json["@timestamp"].as_str().unwrap();
        assert_eq!(timestamp.len(), "2006-01-02T15:04:05.000000Z".len());
    }
}
