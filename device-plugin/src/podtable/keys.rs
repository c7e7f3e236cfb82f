//! Pod keys: `<namespace>/<name>` with Kubernetes' own naming rules, so a key that could never
//! match a real pod is caught when the table is loaded, not silently ignored at ADD time.

/// Checks a pod key; the error says which half is wrong and why.
pub(super) fn check_pod_key(key: &str) -> Result<(), String> {
    let Some((ns, name)) = key.split_once('/') else {
        return Err("pod key must be <namespace>/<pod name>".into());
    };
    if !is_dns1123_label(ns) {
        return Err(format!(
            "namespace {ns:?} is not a DNS-1123 label (lower-case alphanumerics and '-', \
             starting and ending alphanumeric, at most 63 characters)"
        ));
    }
    if !is_dns1123_subdomain(name) {
        return Err(format!(
            "pod name {name:?} is not a DNS-1123 subdomain (dot-separated lower-case \
             alphanumerics and '-', each part starting and ending alphanumeric, at most 253 characters)"
        ));
    }
    Ok(())
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters (Kubernetes' IsDNS1123Label).
pub(super) fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_body(s)
}

/// Dot-separated labels, at most 253 characters overall (Kubernetes' IsDNS1123Subdomain, which
/// does not limit each part to 63).
pub(super) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_body)
}

fn is_label_body(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => alnum(f) && alnum(l) && b.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_pod_keys() {
        for k in [
            "default/db-0",
            "kube-system/coredns-5d78c9869d-x2x4z",
            "a/b",
            "ns/web.v2.example",
            "n1/0",
        ] {
            check_pod_key(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        let long_name = format!("ns/{}", "a".repeat(253));
        check_pod_key(&long_name).unwrap();
    }

    #[test]
    fn rejects_malformed_keys() {
        let too_long_ns = format!("{}/x", "a".repeat(64));
        let too_long_name = format!("ns/{}", "a".repeat(254));
        for (k, frag) in [
            ("db-0", "<namespace>/<pod name>"),
            ("/db-0", "namespace \"\""),
            ("default/", "pod name \"\""),
            ("Default/db-0", "namespace \"Default\""),
            ("default/DB-0", "pod name \"DB-0\""),
            ("default/db_0", "pod name \"db_0\""),
            ("default/-db", "pod name \"-db\""),
            ("default/db.", "pod name \"db.\""),
            ("my.ns/db", "namespace \"my.ns\""),
            ("a/b/c", "pod name \"b/c\""),
            (too_long_ns.as_str(), "namespace"),
            (too_long_name.as_str(), "pod name"),
        ] {
            let e = check_pod_key(k).unwrap_err();
            assert!(e.contains(frag), "{k:?}: {e}");
        }
    }
}
