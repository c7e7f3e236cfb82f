//! `sriov`: the CNI plugin. One short-lived process per CNI call: it reads the CNI environment
//! and the netconf on stdin, does the kernel work, and prints exactly one JSON document (the
//! result or the spec's error) on stdout. Logs never go to stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read_ok = std::io::stdin().read_to_end(&mut stdin).is_ok();
    let (out, ok) = match cni_sriov::run(|k| std::env::var(k).ok(), read_ok.then_some(&stdin[..])) {
        Ok(out) => (out, true),
        Err(e) => (e.to_json(&cni_sriov::requested_version(&stdin)), false),
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
