//! CNI errors: the spec's error codes and JSON. Our typed failures become a [`CniError`] in one
//! place, [`cause`]'s `From` impls; the code is chosen from the failure's type, gRPC status code
//! or errno, never from message text.

use serde::Serialize;

pub mod cause;

pub use cause::Failure;

/// Error codes defined by the CNI specification (1.1.0, "Error" section).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID…).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (e.g. reading stdin).
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (malformed JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: a transient condition (agent unreachable, IP held by a live pod).
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, existing containers' connectivity may be limited.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// First code of the plugin-specific range: an internal failure of ours.
    pub const INTERNAL: u32 = 100;
}

/// A failure reported to the runtime as the spec's error JSON on stdout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}")]
pub struct CniError {
    /// One of the spec's error codes ([`code`]); 100 and up are ours.
    pub code: u32,
    /// Short message for the runtime's log, naming the field or step.
    pub msg: String,
    /// Longer explanation (the underlying error); empty = not rendered.
    pub details: String,
}

impl CniError {
    /// An error with a short message and optional longer details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Prefixes the message with what was being done (`"fetching the attachment failed: …"`),
    /// keeping the code: the caller knows the step, the mapping knows the code.
    pub fn context(mut self, what: &str) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// Adds the longer explanation shown in the `details` field.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The spec's error object for `cni_version` (the version the runtime asked for).
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"1.1.0","code":{},"msg":"internal"}}"#,
                self.code
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_spec_fields() {
        let e = CniError::new(code::INVALID_ENV, "CNI_COMMAND is not set");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 4);
        assert_eq!(v["msg"], "CNI_COMMAND is not set");
        assert!(v.get("details").is_none());
    }
}
