//! `logFile` / `logLevel` (sriov-cni's fields): each call appends lines naming the verb, the
//! container, the ifname, the netns, the VF and the outcome; failed rollback steps are logged;
//! the level filters; a log file that cannot be opened never fails the call. Here the log file's
//! contents are the feature, so the tests read it; the calls' effects are still checked on the
//! CNI result, the ledger and the VF table.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::require_root;
use serde_json::{Value, json};

/// The lines of the log, empty when it does not exist.
fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A line starts with an RFC 3339 UTC timestamp and a bracketed level word.
fn well_formed(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() > 30
        && digits(0..4)
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[26] == b'Z'
        && ["[error]", "[warning]", "[info]", "[debug]"]
            .iter()
            .any(|l| line[27..].starts_with(&format!(" {l} ")))
}

/// The one line of `verb` for `cid` at `level` that contains every fragment of `want`.
fn find<'a>(lines: &'a [String], level: &str, verb: &str, cid: &str, want: &[&str]) -> &'a str {
    lines
        .iter()
        .find(|l| {
            l.contains(&format!(" [{level}] {verb} container={cid} "))
                && want.iter().all(|w| l.contains(w))
        })
        .unwrap_or_else(|| panic!("no [{level}] {verb} line for {cid} with {want:?} in {lines:#?}"))
}

fn pci_of(add: &hw_tests::CniOutcome) -> String {
    add.json["interfaces"][0]["pciID"]
        .as_str()
        .expect("pciID in a 1.1.0 result")
        .to_string()
}

#[test]
fn add_and_del_at_info_log_the_verb_container_vf_and_outcome() {
    if !require_root("add_and_del_at_info_log_the_verb_container_vf_and_outcome") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let log = bed.dir.path().join("cni.log");
    let conf = bed.conf("1.1.0", json!({"logFile": log, "logLevel": "info"}));
    let ns = pod_netns();
    let add = bed.call("ADD", "c-log1", &ns.path(), "db-0", &conf);
    assert!(add.ok, "ADD: {:?} {}", add.json, add.stderr);
    let pci = pci_of(&add);
    let del = bed.call("DEL", "c-log1", &ns.path(), "db-0", &conf);
    assert!(del.ok, "DEL: {:?} {}", del.json, del.stderr);
    let st = hw_tests::cni(&[("CNI_COMMAND", "STATUS")], &conf);
    assert!(st.ok, "STATUS: {:?}", st.json);
    assert!(bed.attachments().is_empty());
    bed.all_vfs_pristine(1).unwrap();

    let lines = log_lines(&log);
    eprintln!("LOG:\n{}", lines.join("\n"));
    assert!(lines.iter().all(|l| well_formed(l)), "{lines:#?}");
    let ctx = [
        "ifname=net1",
        &format!("netns={}", ns.path()),
        &format!("vf={pci}"),
    ];
    for verb in ["ADD", "DEL"] {
        let mut want: Vec<&str> = ctx.to_vec();
        want.push(": ok");
        find(&lines, "info", verb, "c-log1", &want);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" [info] STATUS ") && l.ends_with(": ok")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("[debug]")),
        "debug lines at info: {lines:#?}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "log file mode {mode:o}");
}

/// An IPAM plugin that hands out an address on ADD and fails on DEL (its store "locked"), so
/// the rollback of a failed ADD has a step that fails.
fn failing_del_ipam(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = bin.join("stuck-ipam");
    std::fs::write(
        &plugin,
        r#"#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.1.0","ips":[{"address":"10.88.0.5/24"}]}'
  exit 0
fi
echo '{"cniVersion":"1.1.0","code":11,"msg":"ipam store locked"}'
exit 1
"#,
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn a_failing_add_logs_its_code_and_the_rollback_step_that_failed() {
    if !require_root("a_failing_add_logs_its_code_and_the_rollback_step_that_failed") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let log = bed.dir.path().join("cni.log");
    let cni_path = failing_del_ipam(bed.dir.path());
    let conf = bed.conf(
        "1.1.0",
        json!({"logFile": log, "logLevel": "error", "ipam": {"type": "stuck-ipam"}}),
    );
    let ns = pod_netns();
    // `lo` exists in every namespace: the attach refuses it (4) after IPAM handed out an
    // address, and giving that address back fails.
    let out = hw_tests::cni(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c-logfail"),
            ("CNI_NETNS", &ns.path()),
            ("CNI_IFNAME", "lo"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=not-in-table",
            ),
            ("CNI_PATH", &cni_path.display().to_string()),
        ],
        &conf,
    );
    assert!(!out.ok, "ADD as lo succeeded: {:?}", out.json);
    assert_eq!(out.code(), 4, "{:?}", out.json);
    assert!(bed.attachments().is_empty(), "{:?}", bed.attachments());
    bed.all_vfs_pristine(1).unwrap();

    let lines = log_lines(&log);
    eprintln!("LOG:\n{}", lines.join("\n"));
    assert!(lines.iter().all(|l| well_formed(l)), "{lines:#?}");
    let vf = bed.vf_pcis()[0].clone();
    let vf = format!("vf={vf}");
    find(
        &lines,
        "error",
        "ADD",
        "c-logfail",
        &["ifname=lo", &vf, ": failed code=4 msg="],
    );
    find(
        &lines,
        "error",
        "ADD",
        "c-logfail",
        &[": rollback step failed", "IPAM DEL", "ipam store locked"],
    );
    assert!(
        lines.iter().all(|l| l.contains(" [error] ")),
        "lines below error at logLevel error: {lines:#?}"
    );
}

#[test]
fn error_level_writes_nothing_for_a_success() {
    if !require_root("error_level_writes_nothing_for_a_success") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let log = bed.dir.path().join("cni.log");
    let conf = bed.conf("1.1.0", json!({"logFile": log, "logLevel": "error"}));
    let ns = pod_netns();
    let add = bed.call("ADD", "c-quiet", &ns.path(), "db-0", &conf);
    assert!(add.ok, "ADD: {:?} {}", add.json, add.stderr);
    let del = bed.call("DEL", "c-quiet", &ns.path(), "db-0", &conf);
    assert!(del.ok, "DEL: {:?} {}", del.json, del.stderr);
    assert_eq!(log_lines(&log), Vec::<String>::new());
    bed.all_vfs_pristine(1).unwrap();
}

#[test]
fn debug_adds_the_steps_and_concurrent_calls_append_whole_lines() {
    if !require_root("debug_adds_the_steps_and_concurrent_calls_append_whole_lines") {
        return;
    }
    let mut pods = serde_json::Map::new();
    for i in 0..4 {
        pods.insert(
            format!("default/lg-{i}"),
            json!({"ips": [format!("10.67.0.{}/24", 10 + i)]}),
        );
    }
    let bed = Bed::new(4, &json!({"networks": {"db-net": {"pods": pods}}}));
    let log = bed.dir.path().join("cni.log");
    // sriov-cni's words match in any case.
    let conf = bed.conf("1.1.0", json!({"logFile": log, "logLevel": "DEBUG"}));
    let nss: Vec<_> = (0..4).map(|_| pod_netns()).collect();
    let call_all = |verb: &'static str| -> Vec<hw_tests::CniOutcome> {
        std::thread::scope(|s| {
            let hs: Vec<_> = nss
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let (bed, conf) = (&bed, &conf);
                    s.spawn(move || {
                        bed.call(
                            verb,
                            &format!("c-lg{i}"),
                            &ns.path(),
                            &format!("lg-{i}"),
                            conf,
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let adds = call_all("ADD");
    for a in &adds {
        assert!(a.ok, "ADD: {:?} {}", a.json, a.stderr);
    }
    let dels = call_all("DEL");
    for d in &dels {
        assert!(d.ok, "DEL: {:?} {}", d.json, d.stderr);
    }
    bed.all_vfs_pristine(4).unwrap();

    let lines = log_lines(&log);
    eprintln!("LOG:\n{}", lines.join("\n"));
    let bad: Vec<&String> = lines.iter().filter(|l| !well_formed(l)).collect();
    assert!(bad.is_empty(), "torn or malformed lines: {bad:#?}");
    for (i, a) in adds.iter().enumerate() {
        let cid = format!("c-lg{i}");
        let vf = format!("vf={}", pci_of(a));
        // Every line names one call only: no two contexts were written into one line.
        for l in lines
            .iter()
            .filter(|l| l.contains(&format!("container={cid} ")))
        {
            assert_eq!(l.matches(" container=").count(), 1, "{l}");
        }
        let mine = |level: &str, verb: &str| {
            lines
                .iter()
                .filter(|l| l.contains(&format!(" [{level}] {verb} container={cid} ")))
                .count()
        };
        assert!(
            mine("debug", "ADD") >= 2,
            "ADD {cid}: no step detail: {lines:#?}"
        );
        assert!(mine("debug", "DEL") >= 1, "DEL {cid}: no step detail");
        find(&lines, "info", "ADD", &cid, &[&vf, ": ok"]);
        find(&lines, "info", "DEL", &cid, &[&vf, ": ok"]);
    }
}

#[test]
fn an_unopenable_log_file_leaves_add_succeeding() {
    if !require_root("an_unopenable_log_file_leaves_add_succeeding") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let conf = bed.conf(
        "1.1.0",
        json!({"logFile": "/proc/nonexistent/x.log", "logLevel": "debug"}),
    );
    let ns = pod_netns();
    // `cni` parses stdout as exactly one JSON document (anything else on it fails the parse).
    let add = bed.call("ADD", "c-nolog", &ns.path(), "db-0", &conf);
    assert!(add.ok, "ADD: {:?} {}", add.json, add.stderr);
    let r: &Value = &add.json;
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["interfaces"][0]["name"], "net1");
    assert_eq!(r["ips"][0]["address"], "10.77.0.10/24");
    assert!(ns.has_link("net1"));
    assert_eq!(bed.attachments()[0]["state"], "committed");
    let del = bed.call("DEL", "c-nolog", &ns.path(), "db-0", &conf);
    assert!(del.ok, "DEL: {:?} {}", del.json, del.stderr);
    assert!(del.json.is_null(), "DEL printed {:?}", del.json);
    bed.all_vfs_pristine(1).unwrap();
}
