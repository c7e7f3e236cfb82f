//! `sriov`: the CNI plugin. One short-lived process per CNI call: it reads the CNI environment
//! and the netconf on stdin, does the kernel work, and prints exactly one JSON document (the
//! result or the spec's error) on stdout. Logs never go to stdout.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let (out, ok) = match cni_sriov::read_netconf(std::io::stdin().lock()) {
        Err(e) => (e.to_json(&cni_sriov::requested_version(b"")), false),
        Ok(stdin) => match cni_sriov::run(|k| std::env::var(k).ok(), stdin.as_deref()) {
            Ok(out) => (out, true),
            Err(e) => (
                e.to_json(&cni_sriov::requested_version(
                    stdin.as_deref().unwrap_or_default(),
                )),
                false,
            ),
        },
    };
    // DEL, CHECK, GC and STATUS succeed silently: stdout carries a result or an error only.
    if !out.is_empty() {
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.write_all(b"\n");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
