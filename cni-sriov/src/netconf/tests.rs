//! Netconf parsing: sriov-cni compatibility, precedence, and every error code.

use super::*;
use serde_json::json;

/// A minimal valid netconf with `extra` merged in.
fn conf(extra: Value) -> Value {
    let mut v = json!({"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn ok(extra: Value) -> NetConf {
    NetConf::from_value(conf(extra)).unwrap()
}

/// Asserts the code and that the message holds every fragment.
fn err(extra: Value, code: u32, frags: &[&str]) {
    let e = NetConf::from_value(conf(extra.clone())).unwrap_err();
    assert_eq!(e.code, code, "{extra}: {e:?}");
    for f in frags {
        assert!(e.msg.contains(f), "{extra}: {:?} lacks {f:?}", e.msg);
    }
}

#[test]
fn sriov_cni_reference_example() {
    let c = NetConf::parse(include_bytes!("../../tests/fixtures/sriov-cni-full.json")).unwrap();
    assert_eq!(c.cni_version, "0.3.1");
    assert_eq!(c.device_id, Some("0000:03:02.0".parse().unwrap()));
    assert_eq!(c.mac, Some("ca:fe:c0:ff:ee:00".parse().unwrap()));
    assert_eq!(
        (c.vlan, c.vlan_qos, c.vlan_proto),
        (Some(1000), Some(4), Some(VlanProto::Dot1Ad))
    );
    assert_eq!((c.min_tx_rate, c.max_tx_rate), (Some(100), Some(200)));
    assert_eq!((c.spoofchk, c.trust), (Some(false), Some(true)));
    assert_eq!(c.link_state, Some(VfLinkState::Enable));
    assert_eq!(c.log_level, Some(LogLevel::Debug));
    assert_eq!(c.log_file.as_deref(), Some("/tmp/sriov.log"));
    assert_eq!(c.ipam_type(), Some("host-local"));
    assert!(c.pod_table);
    assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_AGENT_SOCKET));
    assert_eq!(c.raw["ipam"]["subnet"], "10.56.217.0/24");
}

#[test]
fn multus_delegate_with_our_fields_and_runtime_config() {
    let c = NetConf::parse(include_bytes!("../../tests/fixtures/multus-delegate.json")).unwrap();
    assert_eq!(
        c.resource_name.as_deref(),
        Some("example.com/sriov_emulated")
    );
    assert!(!c.pod_table);
    assert_eq!(c.agent_socket, PathBuf::from("/var/run/sriov/agent.sock"));
    assert_eq!(c.mtu, Some(9000));
    assert_eq!(c.capabilities.get("mac"), Some(&true));
    assert_eq!(c.runtime_config.ips.len(), 2);
    assert_eq!(
        c.runtime_config.mac,
        Some("02:00:00:00:00:aa".parse().unwrap())
    );
    // runtimeConfig.deviceID > deviceID > pciBusID
    assert_eq!(c.device_id(), Some("0000:3b:02.3".parse().unwrap()));
    assert_eq!(c.ipam_type(), None, "\"ipam\": {{}} means no delegation");
    assert!(c.args.is_some() && c.prev_result.is_some());
    let prev = c.prev_result().unwrap().unwrap();
    assert_eq!(prev.interfaces[0].name, "net1");
}

#[test]
fn unknown_fields_ignored_null_and_empty_mean_unset() {
    let c = ok(
        json!({"someRuntimeField": {"x": 1}, "vlan": null, "mac": "", "spoofchk": "",
        "deviceID": "", "logLevel": "", "ipam": {}}),
    );
    assert_eq!(
        (c.vlan, c.mac, c.spoofchk, c.device_id),
        (None, None, None, None)
    );
    assert_eq!(c.log_level, None);
}

#[test]
fn keys_match_case_insensitively_like_go() {
    let c = ok(json!({"VLAN": 7, "Mac": "02:00:00:00:00:07", "vlanqos": 1, "MTU": 1500}));
    assert_eq!((c.vlan, c.vlan_qos, c.mtu), (Some(7), Some(1), Some(1500)));
    assert_eq!(c.mac, Some("02:00:00:00:00:07".parse().unwrap()));
    // The exact spelling wins over another case.
    assert_eq!(ok(json!({"Vlan": 5, "vlan": 6})).vlan, Some(6));
}

#[test]
fn words_are_case_insensitive() {
    let c = ok(json!({"vlan": 10, "vlanProto": "802.1Q", "spoofchk": "ON", "link_state": "Auto"}));
    assert_eq!(c.vlan_proto, Some(VlanProto::Dot1Q));
    assert_eq!(c.spoofchk, Some(true));
    assert_eq!(c.link_state, Some(VfLinkState::Auto));
    assert_eq!(
        ok(json!({"vlan": 10, "vlanProto": "802.1AD"})).vlan_proto,
        Some(VlanProto::Dot1Ad)
    );
}

#[test]
fn malformed_json_is_6_and_missing_version_7_unknown_version_1() {
    let e = NetConf::parse(b"{\"cniVersion\": ").unwrap_err();
    assert_eq!(e.code, code::DECODE);
    assert!(e.msg.contains("cannot decode"));
    let e = NetConf::parse(b"[1]").unwrap_err();
    assert_eq!(e.code, code::DECODE);
    assert!(e.msg.contains("JSON object"));
    let e = NetConf::parse(br#"{"name":"n"}"#).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (code::INVALID_CONFIG, "cniVersion is missing")
    );
    err(json!({"cniVersion": ""}), 7, &["cniVersion is missing"]);
    err(
        json!({"cniVersion": 1.0}),
        7,
        &["cniVersion", "expected a string", "1.0"],
    );
    err(json!({"cniVersion": "0.2.0"}), 1, &["0.2.0"]);
    err(json!({"cniVersion": "2.0.0"}), 1, &["2.0.0"]);
}

#[test]
fn name_required_and_well_formed() {
    for name in [json!(null), json!("")] {
        err(json!({"name": name}), 7, &["name is missing"]);
    }
    err(json!({"name": 5}), 7, &["name", "expected a string"]);
    err(json!({"name": "-net"}), 7, &["invalid name \"-net\""]);
    err(json!({"name": "a b"}), 7, &["invalid name \"a b\""]);
    assert_eq!(ok(json!({"name": "Net_1.a-b"})).name, "Net_1.a-b");
}

#[test]
fn vlan_range_qos_and_proto() {
    assert_eq!(ok(json!({"vlan": 4094})).vlan, Some(4094));
    assert_eq!(ok(json!({"vlan": 0})).vlan, Some(0));
    err(
        json!({"vlan": 4095}),
        7,
        &["invalid vlan 4095", "between 0 and 4094"],
    );
    err(json!({"vlan": -1}), 7, &["invalid vlan -1"]);
    err(json!({"vlan": 1e30}), 7, &["vlan", "expected an integer"]);
    err(
        json!({"vlan": 18446744073709551615u64}),
        7,
        &["invalid vlan 18446744073709551615"],
    );
    err(
        json!({"vlan": "100"}),
        7,
        &["vlan: expected an integer, got \"100\""],
    );
    err(
        json!({"vlan": 100.5}),
        7,
        &["vlan: expected an integer, got 100.5"],
    );
    err(
        json!({"vlan": 10, "vlanQoS": 8}),
        7,
        &["invalid vlanQoS 8", "between 0 and 7"],
    );
    err(
        json!({"vlanQoS": 3}),
        7,
        &["vlanQoS 3 requires a non-zero vlan", "not set"],
    );
    err(
        json!({"vlan": 0, "vlanQoS": 3}),
        7,
        &["vlanQoS 3 requires a non-zero vlan (vlan is 0)"],
    );
    assert_eq!(ok(json!({"vlanQoS": 0})).vlan_qos, Some(0));
    assert_eq!(ok(json!({"vlan": 5, "vlanQoS": 7})).vlan_qos, Some(7));
    err(
        json!({"vlanProto": "802.1ad"}),
        7,
        &["802.1ad requires a non-zero vlan"],
    );
    err(
        json!({"vlan": 0, "vlanProto": "802.1ad"}),
        7,
        &["802.1ad requires a non-zero vlan"],
    );
    assert_eq!(
        ok(json!({"vlanProto": "802.1q"})).vlan_proto,
        Some(VlanProto::Dot1Q)
    );
    err(
        json!({"vlan": 5, "vlanProto": "802.1x"}),
        2,
        &["unsupported vlanProto \"802.1x\"", "802.1q, 802.1ad"],
    );
    err(
        json!({"vlan": 5, "vlanProto": ""}),
        2,
        &["unsupported vlanProto \"\""],
    );
    err(
        json!({"vlan": 5, "vlanProto": 8021}),
        7,
        &["vlanProto: expected a string"],
    );
}

#[test]
fn macs() {
    err(
        json!({"mac": "02:00:00:00:00"}),
        7,
        &["invalid mac", "02:00:00:00:00"],
    );
    err(
        json!({"mac": "zz:00:00:00:00:01"}),
        7,
        &["invalid mac", "zz:00:00:00:00:01"],
    );
    err(
        json!({"mac": "01:00:5e:00:00:01"}),
        7,
        &["invalid mac \"01:00:5e:00:00:01\"", "multicast"],
    );
    err(json!({"mac": "ff:ff:ff:ff:ff:ff"}), 7, &["multicast"]);
    err(
        json!({"mac": "00:00:00:00:00:00"}),
        7,
        &["invalid mac \"00:00:00:00:00:00\"", "all-zero"],
    );
    err(json!({"mac": 42}), 7, &["mac: expected a string, got 42"]);
    err(
        json!({"runtimeConfig": {"mac": "03:00:00:00:00:01"}}),
        7,
        &["invalid runtimeConfig.mac", "multicast"],
    );
}

#[test]
fn rates() {
    let c = ok(json!({"min_tx_rate": 0, "max_tx_rate": MAX_TX_RATE_MBPS}));
    assert_eq!(c.max_tx_rate, Some(MAX_TX_RATE_MBPS));
    err(
        json!({"max_tx_rate": -100}),
        7,
        &["invalid max_tx_rate -100", "negative"],
    );
    err(
        json!({"min_tx_rate": -1}),
        7,
        &["invalid min_tx_rate -1", "negative"],
    );
    err(
        json!({"max_tx_rate": 800_001}),
        7,
        &["invalid max_tx_rate 800001", "800000 Mbit/s cap"],
    );
    err(
        json!({"min_tx_rate": 4_294_967_296u64}),
        7,
        &["invalid min_tx_rate 4294967296"],
    );
    err(
        json!({"max_tx_rate": "100"}),
        7,
        &["max_tx_rate: expected an integer"],
    );
    err(
        json!({"min_tx_rate": 200, "max_tx_rate": 100}),
        7,
        &["min_tx_rate 200 is greater than max_tx_rate 100"],
    );
    // max 0 means unlimited, so any min is consistent.
    assert_eq!(
        ok(json!({"min_tx_rate": 200, "max_tx_rate": 0})).min_tx_rate,
        Some(200)
    );
    assert_eq!(ok(json!({"min_tx_rate": 200})).min_tx_rate, Some(200));
}

#[test]
fn words_outside_their_set_are_code_2() {
    err(
        json!({"spoofchk": "yes"}),
        2,
        &["unsupported spoofchk \"yes\"", "on, off"],
    );
    err(json!({"trust": "true"}), 2, &["unsupported trust \"true\""]);
    err(
        json!({"trust": true}),
        7,
        &["trust: expected a string, got true"],
    );
    err(
        json!({"link_state": "up"}),
        2,
        &["unsupported link_state \"up\"", "auto, enable, disable"],
    );
    err(
        json!({"logLevel": "verbose"}),
        2,
        &["unsupported logLevel \"verbose\""],
    );
    err(
        json!({"vlan_trunk": "10-20"}),
        2,
        &["unsupported field vlan_trunk \"10-20\""],
    );
    assert!(
        ok(json!({"vlan_trunk": ""}))
            .raw
            .get("vlan_trunk")
            .is_some()
    );
}

#[test]
fn device_ids() {
    err(
        json!({"deviceID": "0000:3b:02"}),
        7,
        &["invalid deviceID", "0000:3b:02"],
    );
    err(json!({"deviceID": "../../etc"}), 7, &["invalid deviceID"]);
    err(
        json!({"pciBusID": "0000:3b:20.0"}),
        7,
        &["invalid pciBusID", "0000:3b:20.0"],
    );
    err(
        json!({"runtimeConfig": {"deviceID": "x"}}),
        7,
        &["invalid runtimeConfig.deviceID"],
    );
    err(json!({"deviceID": 3}), 7, &["deviceID: expected a string"]);
    let c = ok(json!({"pciBusID": "0000:01:10.2"}));
    assert_eq!(c.device_id(), Some("0000:01:10.2".parse().unwrap()));
    let c = ok(json!({"pciBusID": "0000:01:10.2", "deviceID": "01:10.0"}));
    assert_eq!(c.device_id(), Some("0000:01:10.0".parse().unwrap()));
    assert_eq!(ok(json!({})).device_id(), None);
}

#[test]
fn mac_precedence() {
    let m = |s: &str| -> MacAddr { s.parse().unwrap() };
    let (rc, args, table, conf) = (
        m("02:00:00:00:00:01"),
        m("02:00:00:00:00:02"),
        m("02:00:00:00:00:03"),
        m("02:00:00:00:00:04"),
    );
    let full = ok(json!({"mac": conf.to_string(), "runtimeConfig": {"mac": rc.to_string()}}));
    assert_eq!(full.effective_mac(Some(args), Some(table)), Some(rc));
    let c = ok(json!({"mac": conf.to_string()}));
    assert_eq!(c.effective_mac(Some(args), Some(table)), Some(args));
    assert_eq!(c.effective_mac(None, Some(table)), Some(table));
    assert_eq!(c.effective_mac(None, None), Some(conf));
    assert_eq!(ok(json!({})).effective_mac(None, None), None);
}

#[test]
fn ip_precedence_and_runtime_ips() {
    let table: Vec<IpCidr> = vec!["10.0.0.9/24".parse().unwrap()];
    let c = ok(json!({"runtimeConfig": {"ips": ["10.0.0.5/24", "fd00::5/64"]}}));
    assert_eq!(c.effective_ips(Some(&table)).unwrap().len(), 2);
    let c = ok(json!({"runtimeConfig": {"ips": []}}));
    assert_eq!(c.effective_ips(Some(&table)), Some(&table[..]));
    assert_eq!(c.effective_ips(None), None);
    err(
        json!({"runtimeConfig": {"ips": ["10.0.0.5"]}}),
        7,
        &["runtimeConfig.ips[0]", "10.0.0.5", "missing /prefix"],
    );
    err(
        json!({"runtimeConfig": {"ips": [5]}}),
        7,
        &["runtimeConfig.ips[0]: expected a CIDR string"],
    );
    err(
        json!({"runtimeConfig": {"ips": "10.0.0.5/24"}}),
        7,
        &["runtimeConfig.ips: expected a list"],
    );
    err(
        json!({"runtimeConfig": []}),
        7,
        &["runtimeConfig: expected an object"],
    );
}

#[test]
fn our_fields() {
    err(
        json!({"podTable": "yes"}),
        7,
        &["podTable: expected true or false"],
    );
    err(
        json!({"agentSocket": "run/agent.sock"}),
        7,
        &["invalid agentSocket \"run/agent.sock\"", "absolute"],
    );
    err(
        json!({"resourceName": "a b"}),
        7,
        &["invalid resourceName \"a b\""],
    );
    err(
        json!({"resourceName": 1}),
        7,
        &["resourceName: expected a string"],
    );
    err(
        json!({"mtu": 67}),
        7,
        &["invalid mtu 67", "between 68 and 65535 bytes"],
    );
    err(json!({"mtu": 70000}), 7, &["invalid mtu 70000"]);
    assert_eq!(ok(json!({"mtu": 68})).mtu, Some(68));
}

#[test]
fn structural_fields() {
    err(
        json!({"ipam": "host-local"}),
        7,
        &["ipam: expected an object, got \"host-local\""],
    );
    err(
        json!({"ipam": {"type": "../bin/sh"}}),
        7,
        &["invalid ipam.type \"../bin/sh\""],
    );
    err(
        json!({"ipam": {"type": 1}}),
        7,
        &["ipam.type: expected a string"],
    );
    err(
        json!({"capabilities": {"mac": "yes"}}),
        7,
        &["capabilities.mac: expected true or false"],
    );
    err(
        json!({"prevResult": "x"}),
        7,
        &["prevResult: expected an object"],
    );
    err(json!({"args": [1]}), 7, &["args: expected an object"]);
    err(
        json!({"dns": {"nameservers": "1.1.1.1"}}),
        7,
        &["dns.nameservers: expected a list"],
    );
    err(
        json!({"dns": {"search": [1]}}),
        7,
        &["dns.search[0]: expected a string"],
    );
    let c = ok(json!({"dns": {"nameservers": ["10.0.0.53"], "domain": "x.local"}}));
    assert_eq!(c.dns.unwrap().domain.as_deref(), Some("x.local"));
    let long = "x".repeat(500);
    let e = NetConf::from_value(conf(json!({"vlan": long}))).unwrap_err();
    assert!(
        e.msg.len() < 200,
        "values are cut short in messages: {}",
        e.msg.len()
    );
}

#[test]
fn prev_result_in_the_netconf_version() {
    let prev = json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.7/16"}]});
    let c = NetConf::from_value(json!({"cniVersion": "0.4.0", "name": "n", "prevResult": prev}))
        .unwrap();
    assert_eq!(c.prev_result().unwrap().unwrap().ips.len(), 1);
    let c = ok(json!({"prevResult": {"ips": [{"address": "bad"}]}}));
    let e = c.prev_result().unwrap_err();
    assert_eq!(e.code, code::DECODE);
    assert!(
        e.msg.starts_with("prevResult: ") && e.msg.contains("ips[0].address"),
        "{}",
        e.msg
    );
    assert_eq!(ok(json!({})).prev_result().unwrap(), None);
}

#[test]
fn gc_valid_attachments() {
    let c = ok(json!({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "net1"}]}));
    let v = c.valid_attachments.unwrap();
    assert_eq!(
        (v[0].container_id.as_str(), v[0].ifname.as_str()),
        ("c1", "net1")
    );
    assert_eq!(ok(json!({})).valid_attachments, None);
    err(
        json!({"cni.dev/valid-attachments": [{"containerID": "c1"}]}),
        7,
        &["cni.dev/valid-attachments[0].ifname"],
    );
}
