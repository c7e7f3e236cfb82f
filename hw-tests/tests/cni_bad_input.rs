//! Bad input gets the spec's error code and a message naming the problem, and changes nothing:
//! the ledger stays empty and every VF stays as it was.

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::require_root;
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    conf: Value,
    code: u64,
    fragment: &'static str,
}

#[test]
fn bad_inputs_get_the_right_code_and_change_nothing() {
    if !require_root("bad_inputs_get_the_right_code_and_change_nothing") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let ns = pod_netns();
    let good = bed.conf("1.0.0", json!({}));
    let with = |extra: Value| {
        let mut c = good.clone();
        if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
            o.extend(e);
        }
        c
    };
    let base_env = |ifname: &str, netns: &str| {
        vec![
            ("CNI_COMMAND", "ADD".to_string()),
            ("CNI_CONTAINERID", "c-bad".to_string()),
            ("CNI_NETNS", netns.to_string()),
            ("CNI_IFNAME", ifname.to_string()),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0".to_string(),
            ),
            ("CNI_PATH", "/usr/lib/cni".to_string()),
        ]
    };
    let env = base_env("net1", &ns.path());
    let drop_var = |k: &str| {
        env.iter()
            .filter(|(n, _)| *n != k)
            .cloned()
            .collect::<Vec<_>>()
    };
    let cases = vec![
        Case {
            name: "missing CNI_COMMAND",
            env: drop_var("CNI_COMMAND"),
            conf: good.clone(),
            code: 4,
            fragment: "CNI_COMMAND",
        },
        Case {
            name: "missing CNI_CONTAINERID",
            env: drop_var("CNI_CONTAINERID"),
            conf: good.clone(),
            code: 4,
            fragment: "CNI_CONTAINERID",
        },
        Case {
            name: "missing CNI_NETNS",
            env: drop_var("CNI_NETNS"),
            conf: good.clone(),
            code: 4,
            fragment: "CNI_NETNS",
        },
        Case {
            name: "unknown cniVersion",
            env: env.clone(),
            conf: with(json!({"cniVersion": "0.2.0"})),
            code: 1,
            fragment: "0.2.0",
        },
        Case {
            name: "vlan 4095",
            env: env.clone(),
            conf: with(json!({"vlan": 4095})),
            code: 7,
            fragment: "vlan",
        },
        Case {
            name: "vlanQoS without vlan",
            env: env.clone(),
            conf: with(json!({"vlanQoS": 3})),
            code: 7,
            fragment: "vlanQoS",
        },
        Case {
            name: "bad MAC",
            env: env.clone(),
            conf: with(json!({"mac": "02:00:zz:00:00:01"})),
            code: 7,
            fragment: "mac",
        },
        Case {
            name: "negative rate",
            env: env.clone(),
            conf: with(json!({"max_tx_rate": -5})),
            code: 7,
            fragment: "max_tx_rate",
        },
        Case {
            name: "absurd rate",
            env: env.clone(),
            conf: with(json!({"max_tx_rate": 1_000_000_000u64})),
            code: 7,
            fragment: "max_tx_rate",
        },
        Case {
            name: "ifname too long",
            env: base_env("a-very-long-ifname", &ns.path()),
            conf: good.clone(),
            code: 4,
            fragment: "CNI_IFNAME",
        },
        Case {
            name: "ifname with slash",
            env: base_env("net/1", &ns.path()),
            conf: good.clone(),
            code: 4,
            fragment: "CNI_IFNAME",
        },
        Case {
            name: "netns not a netns",
            env: base_env("net1", "/etc/hostname"),
            conf: good.clone(),
            code: 4,
            fragment: "/etc/hostname",
        },
        Case {
            name: "netns missing",
            env: base_env("net1", "/run/netns/does-not-exist"),
            conf: good.clone(),
            code: 4,
            fragment: "does-not-exist",
        },
        Case {
            name: "unknown pool",
            env: env.clone(),
            conf: with(json!({"resourceName": "test.io/nope"})),
            code: 7,
            fragment: "test.io/nope",
        },
        Case {
            name: "unknown deviceID",
            env: env.clone(),
            conf: with(json!({"deviceID": "0000:99:00.1"})),
            code: 7,
            fragment: "0000:99:00.1",
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let envs: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = hw_tests::cni(&envs, &c.conf);
        let msg = format!(
            "{} {}",
            out.json["msg"].as_str().unwrap_or(""),
            out.json["details"].as_str().unwrap_or("")
        );
        if out.ok || out.code() != c.code || !msg.contains(c.fragment) {
            failures.push(format!(
                "{}: want code {} with {:?}, got ok={} {}",
                c.name, c.code, c.fragment, out.ok, out.json
            ));
        }
        if !bed.attachments().is_empty() {
            failures.push(format!("{}: left an attachment in the ledger", c.name));
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
