//! The CNI spec versions this plugin speaks and the VERSION verb.

use serde::Deserialize;

use crate::error::{CniError, code};

/// Every version a runtime may ask for; results are rendered in each of these shapes.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest spec version we implement; used when the runtime's is unknown.
pub const LATEST: &str = "1.1.0";

/// Checks that `v` is one of [`SUPPORTED`]: an unknown version is error 1, as the spec requires.
pub fn check(v: &str) -> Result<(), CniError> {
    if SUPPORTED.contains(&v) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("unsupported cniVersion {v:?}"),
        )
        .with_details(format!("this plugin supports {}", SUPPORTED.join(", "))))
    }
}

/// Answers VERSION: the supported list, never needing the agent or the kernel.
///
/// Stdin may carry `{"cniVersion": …}`; an empty or unparsable stdin still gets an answer
/// in the newest version, because VERSION is how a runtime discovers what to send.
pub fn version_reply(stdin: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Req {
        #[serde(rename = "cniVersion")]
        cni_version: Option<String>,
    }
    let asked = serde_json::from_slice::<Req>(stdin)
        .ok()
        .and_then(|r| r.cni_version)
        .filter(|v| SUPPORTED.contains(&v.as_str()));
    serde_json::json!({
        "cniVersion": asked.as_deref().unwrap_or(LATEST),
        "supportedVersions": SUPPORTED,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lists_all() {
        let v: serde_json::Value = serde_json::from_str(&version_reply(b"")).unwrap();
        assert_eq!(v["cniVersion"], LATEST);
        assert_eq!(
            v["supportedVersions"].as_array().unwrap().len(),
            SUPPORTED.len()
        );
        let v: serde_json::Value =
            serde_json::from_str(&version_reply(br#"{"cniVersion":"0.4.0"}"#)).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
    }

    #[test]
    fn unknown_version_is_code_1() {
        assert_eq!(check("0.2.0").unwrap_err().code, 1);
        assert!(check("1.0.0").is_ok());
    }
}
