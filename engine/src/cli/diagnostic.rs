//! What the CLI tells its user about a problem: Terraform's shape (a
//! summary, where in the configuration, the line, then what to do).

use std::fmt;

/// Where in the configuration something was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: usize,
    /// The block it is in, as Terraform names it (`resource "atrium_tenant" "acme"`).
    pub block: String,
    /// The text of that line.
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem (or a warning), where it was found, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    /// Boxed: most diagnostics travel in `Result`s, which stay small.
    pub position: Option<Box<Position>>,
}

impl Diagnostic {
    /// An error.
    pub fn new(summary: impl Into<String>, detail: impl Into<String>, position: Option<Position>) -> Self {
        Self {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            position: position.map(Box::new),
        }
    }

    pub fn warning(summary: impl Into<String>, detail: impl Into<String>, position: Option<Position>) -> Self {
        Self { severity: Severity::Warning, ..Self::new(summary, detail, position) }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// As Terraform prints it: the summary, where, the line, then the detail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        };
        writeln!(f, "{severity}: {}", self.summary)?;
        if let Some(position) = &self.position {
            writeln!(f)?;
            writeln!(f, "  on {} line {}, in {}:", position.file, position.line, position.block)?;
            writeln!(f, "{:>4}: {}", position.line, position.source.trim_end())?;
        }
        if !self.detail.is_empty() {
            writeln!(f)?;
            write!(f, "{}", self.detail)?;
        }
        Ok(())
    }
}
