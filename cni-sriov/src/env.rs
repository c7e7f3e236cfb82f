//! The CNI_* environment a runtime passes, parsed once and validated.

use crate::error::{CniError, code};

/// The verb the runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `ADD`: attach a VF to the container.
    Add,
    /// `DEL`: give the VF back; must succeed even when things are already gone.
    Del,
    /// `CHECK`: verify an earlier ADD is still in place.
    Check,
    /// `VERSION`: report the spec versions we speak.
    Version,
    /// `STATUS`: whether the plugin is ready for ADDs (1.1.0).
    Status,
    /// `GC`: release attachments the runtime no longer lists (1.1.0).
    Gc,
}

impl Command {
    /// The verb as `CNI_COMMAND` spells it (for logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// Parses `CNI_COMMAND`; unknown verbs are error 4 (invalid environment).
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!("unknown CNI_COMMAND {other:?}"),
                ));
            }
        })
    }
}

/// Reads `CNI_COMMAND` from a lookup function (the process environment in `main`).
pub fn command(get: impl Fn(&str) -> Option<String>) -> Result<Command, CniError> {
    let c = get("CNI_COMMAND")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_COMMAND is not set"))?;
    Command::parse(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_verbs_and_rejects_others() {
        let env = |v: &'static str| move |k: &str| (k == "CNI_COMMAND").then(|| v.to_string());
        assert_eq!(command(env("ADD")).unwrap(), Command::Add);
        assert_eq!(command(env("GC")).unwrap(), Command::Gc);
        assert_eq!(command(env("add")).unwrap_err().code, 4);
        assert_eq!(command(|_| None).unwrap_err().code, 4);
    }
}
