//! The bad-input corpus (`hw-tests/corpus/bad-input.json`): every malformed netconf, environment,
//! pod table and pool config gets its expected error code and a message naming the problem, and
//! changes nothing — the ledger stays empty and every VF stays as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::require_root;
use serde_json::{Value, json};

fn corpus() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/bad-input.json");
    serde_json::from_slice(&std::fs::read(p).expect("corpus")).expect("corpus is JSON")
}

fn text(input: &Value) -> Vec<u8> {
    match input {
        Value::String(s) => s.clone().into_bytes(),
        v => v.to_string().into_bytes(),
    }
}

#[test]
fn pod_tables_and_pool_configs_in_the_corpus_are_refused_with_the_entry_named() {
    let c = corpus();
    let mut failures = Vec::new();
    for case in c["podtable"].as_array().unwrap() {
        match device_plugin::podtable::PodTable::parse(&text(&case["input"])) {
            Ok(_) => failures.push(format!("pod table {}: accepted", case["name"])),
            Err(e) if !e.to_string().contains(case["fragment"].as_str().unwrap()) => {
                failures.push(format!("pod table {}: {e}", case["name"]))
            }
            Err(_) => {}
        }
    }
    for case in c["pools"].as_array().unwrap() {
        match device_plugin::pools::PoolConfig::parse(&text(&case["input"])) {
            Ok(_) => failures.push(format!("pools {}: accepted", case["name"])),
            Err(e) if !e.to_string().contains(case["fragment"].as_str().unwrap()) => {
                failures.push(format!("pools {}: {e}", case["name"]))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_cni_inputs_get_the_right_code_and_change_nothing() {
    if !require_root("bad_cni_inputs_get_the_right_code_and_change_nothing") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let ns = pod_netns();
    let good = bed.conf("1.0.0", json!({}));
    let c = corpus();
    let cases = c["cni"].as_array().unwrap();
    let total = cases.len()
        + c["podtable"].as_array().unwrap().len()
        + c["pools"].as_array().unwrap().len();
    assert!(
        total >= 40,
        "the corpus must hold at least 40 cases, has {total}"
    );
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("CNI_COMMAND".into(), "ADD".into()),
            ("CNI_CONTAINERID".into(), "c-bad".into()),
            ("CNI_NETNS".into(), ns.path()),
            ("CNI_IFNAME".into(), "net1".into()),
            (
                "CNI_ARGS".into(),
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0".into(),
            ),
            ("CNI_PATH".into(), "/usr/lib/cni".into()),
        ];
        if let Some(o) = case["env"].as_object() {
            for (k, v) in o {
                env.retain(|(n, _)| n != k);
                if let Some(v) = v.as_str() {
                    env.push((k.clone(), v.to_string()));
                }
            }
        }
        let mut conf = good.clone();
        if let Some(o) = case["conf"].as_object() {
            for (k, v) in o {
                if v.is_null() {
                    conf.as_object_mut().unwrap().remove(k);
                } else {
                    conf[k] = v.clone();
                }
            }
        }
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = hw_tests::cni(&envs, &conf);
        let msg = format!(
            "{} {}",
            out.json["msg"].as_str().unwrap_or(""),
            out.json["details"].as_str().unwrap_or("")
        );
        let (code, frag) = (
            case["code"].as_u64().unwrap(),
            case["fragment"].as_str().unwrap(),
        );
        if out.ok || out.code() != code || !msg.contains(frag) {
            failures.push(format!(
                "{name}: want code {code} with {frag:?}, got ok={} {}",
                out.ok, out.json
            ));
        }
        if !bed.attachments().is_empty() {
            failures.push(format!("{name}: left an attachment in the ledger"));
        }
    }
    // Malformed JSON on stdin.
    let raw = std::process::Command::new(hw_tests::bin("sriov"))
        .env("CNI_COMMAND", "ADD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(b"{not json")?;
            ch.wait_with_output()
        })
        .unwrap();
    let v: Value = serde_json::from_slice(&raw.stdout).unwrap();
    if raw.status.success() || v["code"] != 6 {
        failures.push(format!("malformed JSON: got {v}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    bed.all_vfs_pristine(1).unwrap();
    assert!(
        ns.ip_json(&["link", "show", "net1"])
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
}

/// `CNI_NETNS` naming a FIFO: ADD answers code 4 at once (opening it for reading used to block
/// until a writer came, forever) and records nothing.
#[test]
fn a_fifo_as_cni_netns_is_refused_at_once() {
    if !require_root("a_fifo_as_cni_netns_is_refused_at_once") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let fifo = bed.dir.path().join("not-a-netns");
    hw_tests::run_ok(std::process::Command::new("mkfifo").arg(&fifo));
    let conf = bed.conf("1.0.0", json!({}));
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.to_string_lossy().to_string();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(bed.call("ADD", "fifo-ctr", &path, "db-0", &conf));
        });
        let out = match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(out) => out,
            Err(_) => {
                // Unblock the hung plugin (a writer lets its open return), then fail.
                use std::os::unix::fs::OpenOptionsExt;
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo);
                panic!("ADD with a FIFO as CNI_NETNS hung for 10 s");
            }
        };
        assert!(!out.ok, "{out:?}");
        assert_eq!(out.code(), 4, "{out:?}");
        let msg = out.json["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("not-a-netns"), "{msg}");
    });
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(bed.attachments().is_empty(), "nothing recorded");
}

/// A netconf over the 4 MiB cap is refused with code 6 before anything else is looked at
/// (without the cap this ADD would get as far as the missing `CNI_NETNS`, code 4).
#[test]
fn an_oversized_netconf_is_refused_with_code_6() {
    let pad = "x".repeat(5 << 20);
    let conf = json!({"cniVersion": "1.0.0", "name": "big", "type": "sriov", "pad": pad});
    let out = hw_tests::cni(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "big")], &conf);
    assert!(!out.ok);
    assert_eq!(out.code(), 6, "{:?}", out.json);
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than 4 MiB")
    );
    let small = json!({"cniVersion": "1.0.0", "name": "small", "type": "sriov", "pad": "x"});
    let out = hw_tests::cni(
        &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "small")],
        &small,
    );
    assert_eq!(
        out.code(),
        4,
        "a small one gets as far as the environment: {:?}",
        out.json
    );
}
