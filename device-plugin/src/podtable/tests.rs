//! Whole-table tests: parsing, merging, lookups and the rejection of bad tables.

use std::net::IpAddr;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/fixtures/podtable/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidrs(v: &[&str]) -> Vec<IpCidr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// A table with one network `net` whose `pods` object is `pods`.
fn one_net(defaults: &str, pods: &str) -> String {
    format!(r#"{{"networks": {{"net": {{"defaults": {defaults}, "pods": {pods}}}}}}}"#)
}

fn rejected(json: &str) -> PodTableError {
    match PodTable::parse(json.as_bytes()) {
        Ok(t) => panic!("accepted ({} entries): {json}", t.entries()),
        Err(e) => e,
    }
}

#[test]
fn valid_table_two_networks_v4_and_v6() {
    let t = PodTable::parse(&fixture("valid.json")).unwrap();
    assert_eq!(t.networks(), 2);
    assert_eq!(t.entries(), 5);
    assert_eq!(t.network_names(), ["db-net", "storage-net"]);

    let db0 = t.lookup("db-net", "default", "db-0").unwrap();
    assert_eq!(db0.ips, cidrs(&["10.10.0.10/24", "fd00:10::10/64"]));
    assert_eq!(db0.gateway, [ip("10.10.0.1"), ip("fd00:10::1")]);
    assert_eq!(
        db0.routes,
        [Route {
            dst: "10.20.0.0/16".parse().unwrap(),
            gw: Some(ip("10.10.0.254"))
        }]
    );
    let dns = db0.dns.as_ref().unwrap();
    assert_eq!(dns.nameservers, [ip("10.10.0.53")]);
    assert_eq!(dns.domain.as_deref(), Some("db.example"));
    assert_eq!(dns.options, ["ndots:2"]);
    assert_eq!(
        (
            db0.vlan,
            db0.vlan_qos,
            db0.max_tx_rate,
            db0.min_tx_rate,
            db0.mac
        ),
        (Some(100), None, Some(1000), None, None)
    );

    let s0 = t.lookup("storage-net", "default", "db-0").unwrap();
    assert_eq!(s0.ips, cidrs(&["192.168.50.10/24", "fd00:50::10/64"]));
    assert_eq!(s0.gateway, [ip("192.168.50.1")]);
    assert_eq!(s0.routes.len(), 2);
    assert_eq!(s0.routes[1].gw, None);
    assert_eq!(
        (s0.vlan, s0.dns.as_ref()),
        (None, None),
        "no defaults in storage-net"
    );
}

#[test]
fn entries_override_defaults_field_by_field() {
    let t = PodTable::parse(&fixture("valid.json")).unwrap();
    let db1 = t.lookup("db-net", "default", "db-1").unwrap();
    // Own: ips, mac, QoS, min rate, and `"routes": []` which clears the default routes.
    assert_eq!(db1.ips, cidrs(&["10.10.0.11/24"]));
    assert_eq!(db1.mac.unwrap().to_string(), "02:00:00:00:10:0b");
    assert_eq!(db1.vlan_qos, Some(5));
    assert_eq!(db1.min_tx_rate, Some(100));
    assert!(db1.routes.is_empty());
    // Inherited: vlan, max rate, DNS; the v6 default gateway is dropped (no v6 address).
    assert_eq!((db1.vlan, db1.max_tx_rate), (Some(100), Some(1000)));
    assert!(db1.dns.is_some());
    assert_eq!(db1.gateway, [ip("10.10.0.1")]);

    // Explicit zeros override; `null` means "not given" and inherits.
    let l = t.lookup("db-net", "payments", "ledger-0.shard-a").unwrap();
    assert_eq!((l.vlan, l.max_tx_rate), (Some(0), Some(0)));
    assert_eq!(l.dns, t.lookup("db-net", "default", "db-0").unwrap().dns);
    assert_eq!(
        l.ips,
        cidrs(&["10.10.0.12/24", "10.10.0.112/24"]),
        "two v4 addresses, order kept"
    );
}

#[test]
fn lookups_that_miss_and_the_default_namespace() {
    let t = PodTable::parse(&fixture("valid.json")).unwrap();
    assert!(
        t.lookup("db-net", "default", "db-9").is_none(),
        "defaults apply only to listed pods"
    );
    assert!(t.lookup("db-net", "other", "db-0").is_none());
    assert!(t.lookup("no-such-net", "default", "db-0").is_none());
    assert_eq!(
        t.lookup("db-net", "", "db-0"),
        t.lookup("db-net", "default", "db-0")
    );
    assert!(
        PodTable::empty()
            .lookup("db-net", "default", "db-0")
            .is_none()
    );
}

#[test]
fn holder_of_and_same_ip_in_two_networks() {
    let t = PodTable::parse(&fixture("valid.json")).unwrap();
    // 10.10.0.11 is db-1's on both networks: allowed, networks are separate.
    assert_eq!(
        t.holder_of("db-net", ip("10.10.0.11")),
        Some("default/db-1")
    );
    assert_eq!(
        t.holder_of("storage-net", ip("10.10.0.11")),
        Some("default/db-1")
    );
    assert_eq!(
        t.holder_of("db-net", ip("10.10.0.112")),
        Some("payments/ledger-0.shard-a")
    );
    assert_eq!(
        t.holder_of("db-net", ip("fd00:10:0:0::10")),
        Some("default/db-0")
    );
    assert_eq!(t.holder_of("db-net", ip("10.10.0.99")), None);
    assert_eq!(t.holder_of("nope", ip("10.10.0.11")), None);

    // Same address, two different pods, two different networks.
    let json = r#"{"networks": {
        "a": {"pods": {"default/x": {"ips": ["10.0.0.5/24"]}}},
        "b": {"pods": {"default/y": {"ips": ["10.0.0.5/24"]}}}}}"#;
    let t = PodTable::parse(json.as_bytes()).unwrap();
    assert_eq!(t.holder_of("a", ip("10.0.0.5")), Some("default/x"));
    assert_eq!(t.holder_of("b", ip("10.0.0.5")), Some("default/y"));
}

#[test]
fn empty_tables() {
    for json in [
        r#"{"networks": {}}"#,
        r#"{"networks": {"n": {}}}"#,
        r#"{"networks": {"n": {"defaults": {"vlan": 5}, "pods": {}}}}"#,
    ] {
        let t = PodTable::parse(json.as_bytes()).unwrap();
        assert_eq!(t.entries(), 0, "{json}");
    }
}

#[test]
fn bad_shapes_are_refused() {
    for (json, frag) in [
        ("", "EOF"),
        ("[]", "networks"),
        ("{}", "missing field `networks`"),
        (r#"{"networks": [] }"#, "invalid type"),
        (
            r#"{"networks": {}, "version": 1}"#,
            "unknown field `version`",
        ),
        (r#"{"networks": {"n": []}}"#, "network object"),
    ] {
        let e = rejected(json);
        assert!(matches!(e, PodTableError::Json(_)), "{json}: {e}");
        assert!(e.to_string().contains(frag), "{json}: {e}");
    }
}

#[test]
fn each_invalid_entry_is_rejected_naming_network_pod_and_value() {
    let none = "{}";
    let cases: &[(&str, &str, &str)] = &[
        // (defaults, pods, expected message fragment after `network "net" pod "default/p": `)
        (
            none,
            r#"{"default/p": {"ips": ["10.0.0.300/24"]}}"#,
            r#"ips[0] "10.0.0.300/24" is not a CIDR"#,
        ),
        (
            none,
            r#"{"default/p": {"ips": ["fd00::zz/64"]}}"#,
            r#"ips[0] "fd00::zz/64" is not a CIDR"#,
        ),
        (
            none,
            r#"{"default/p": {"ips": ["10.0.0.5"]}}"#,
            r#"ips[0] "10.0.0.5" is not a CIDR (missing /prefix)"#,
        ),
        (
            none,
            r#"{"default/p": {"ips": ["10.0.0.5/24"], "gateway": "10.0.0.x"}}"#,
            r#"gateway "10.0.0.x" is not an IP address"#,
        ),
        (
            none,
            r#"{"default/p": {"mac": "02:00:00:00:00:zz"}}"#,
            r#"mac "02:00:00:00:00:zz" is not a MAC"#,
        ),
        (
            none,
            r#"{"default/p": {"mac": "03:00:00:00:00:01"}}"#,
            r#"mac "03:00:00:00:00:01" is a multicast"#,
        ),
        (
            none,
            r#"{"default/p": {"ips": ["10.0.0.5/24"], "gateway": "10.0.1.1"}}"#,
            "gateway 10.0.1.1 is not inside any of the pod's IPv4 subnets (10.0.0.5/24)",
        ),
        (
            r#"{"gateway": "192.168.0.1"}"#,
            r#"{"default/p": {"ips": ["10.0.0.5/24"]}}"#,
            "gateway 192.168.0.1 (from defaults) is not inside",
        ),
        (
            none,
            r#"{"default/p": {"ips": ["fd00::5/64"], "gateway": "fd01::1"}}"#,
            "gateway fd01::1 is not inside any of the pod's IPv6 subnets (fd00::5/64)",
        ),
        (
            none,
            r#"{"default/p": {"ips": ["10.0.0.0/24"]}}"#,
            "ips[0] 10.0.0.0/24 is the subnet's network address",
        ),
        (
            none,
            r#"{"default/p": {"ips": ["10.0.3.255/22"]}}"#,
            "ips[0] 10.0.3.255/22 is the subnet's broadcast address",
        ),
        (
            none,
            r#"{"default/p": {"vlan": 4095}}"#,
            "vlan 4095 is out of range 0..=4094",
        ),
        (
            none,
            r#"{"default/p": {"vlan": 10, "vlanQoS": 8}}"#,
            "vlanQoS 8 is out of range 0..=7",
        ),
        (
            none,
            r#"{"default/p": {"vlanQoS": 2}}"#,
            "vlanQoS 2 needs a vlan other than 0",
        ),
        (
            none,
            r#"{"default/p": {"max_tx_rate": -1}}"#,
            "max_tx_rate -1 is out of range",
        ),
        (
            none,
            r#"{"default/p": {"min_tx_rate": 200, "max_tx_rate": 100}}"#,
            "min_tx_rate 200 exceeds max_tx_rate 100",
        ),
        (
            none,
            r#"{"default/p": {"ips": ["10.0.0.5/24"], "ipv6": true}}"#,
            r#"unknown key "ipv6""#,
        ),
        (
            none,
            r#"{"default/p": {"routes": [{"dst": "10.0.0.0/8", "metric": 5}]}}"#,
            "routes: unknown field `metric`",
        ),
        (
            none,
            r#"{"default/p": {"dns": {"nameserver": ["1.1.1.1"]}}}"#,
            "dns: unknown field `nameserver`",
        ),
        (
            none,
            r#"{"default/p": "10.0.0.5/24"}"#,
            r#"must be an object like {"ips""#,
        ),
    ];
    for (defaults, pods, frag) in cases {
        let json = one_net(defaults, pods);
        let msg = rejected(&json).to_string();
        let want = format!(r#"network "net" pod "default/p": {frag}"#);
        assert!(msg.contains(&want), "{json}\n  want: {want}\n  got:  {msg}");
    }
}

#[test]
fn bad_pod_keys_network_keys_and_defaults_are_named() {
    let cases: &[(&str, &str)] = &[
        (
            &one_net("{}", r#"{"db-0": {}}"#),
            r#"network "net" pod "db-0": pod key must be <namespace>/<pod name>"#,
        ),
        (
            &one_net("{}", r#"{"Default/db-0": {}}"#),
            r#"network "net" pod "Default/db-0": namespace "Default" is not a DNS-1123 label"#,
        ),
        (
            &one_net("{}", r#"{"default/db_0": {}}"#),
            r#"network "net" pod "default/db_0": pod name "db_0" is not a DNS-1123 subdomain"#,
        ),
        (
            &one_net(
                "{}",
                r#"{"default/a": {"vlan": 1}, "default/a": {"vlan": 2}}"#,
            ),
            r#"network "net" pod "default/a": pod key appears twice in this network"#,
        ),
        (
            &one_net(r#"{"vlan": 5000}"#, "{}"),
            r#"network "net" defaults: vlan 5000 is out of range"#,
        ),
        (
            &one_net(r#"{"gw": "10.0.0.1"}"#, "{}"),
            r#"network "net" defaults: unknown key "gw""#,
        ),
        (
            r#"{"networks": {"net": {"pod": {}}}}"#,
            r#"network "net": unknown key "pod" (expected defaults, pods)"#,
        ),
        (
            r#"{"networks": {"net": {}, "net": {}}}"#,
            r#"network "net": network appears twice"#,
        ),
        (
            r#"{"networks": {"": {}}}"#,
            r#"network "": network name is empty"#,
        ),
    ];
    for (json, want) in cases {
        let msg = rejected(json).to_string();
        assert!(msg.contains(want), "{json}\n  want: {want}\n  got:  {msg}");
    }
}

#[test]
fn two_bad_entries_are_both_named_and_good_ones_are_not() {
    let e = PodTable::parse(&fixture("two_bad_entries.json")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("pod table rejected (2 problems): "),
        "{msg}"
    );
    assert!(
        msg.contains(
            r#"network "db-net" pod "default/db-1": ips[0] "10.0.0.300/24" is not a CIDR"#
        ),
        "{msg}"
    );
    assert!(
        msg.contains(r#"network "db-net" pod "default/db-3": vlan 4095 is out of range 0..=4094"#),
        "{msg}"
    );
    assert!(!msg.contains("db-0") && !msg.contains("db-2"), "{msg}");
    let scopes: Vec<&Scope> = e.problems().iter().map(|p| &p.scope).collect();
    assert_eq!(
        scopes,
        [
            &Scope::Pod("default/db-1".into()),
            &Scope::Pod("default/db-3".into())
        ]
    );
}

#[test]
fn duplicate_ip_in_one_network_names_both_pods() {
    let json = one_net(
        "{}",
        r#"{"default/db-0": {"ips": ["10.0.0.10/24", "fd00::a/64"]},
            "default/db-1": {"ips": ["10.0.0.10/16"]},
            "default/db-2": {"ips": ["fd00:0::0:a/64"]}}"#,
    );
    let e = rejected(&json);
    let msg = e.to_string();
    assert!(msg.contains(r#"network "net" pod "default/db-1": ips[0] 10.0.0.10 is also given to pod "default/db-0""#), "{msg}");
    assert!(msg.contains(r#"network "net" pod "default/db-2": ips[0] fd00::a is also given to pod "default/db-0""#), "{msg}");
    assert_eq!(e.problems().len(), 2);

    // Addresses inherited from the defaults collide too, and the message says where they came from.
    let msg = rejected(&one_net(
        r#"{"ips": ["10.0.0.9/24"]}"#,
        r#"{"default/a": {}, "default/b": {}}"#,
    ))
    .to_string();
    assert!(msg.contains(r#"pod "default/b": ips[0] 10.0.0.9 is also given to pod "default/a" (ips come from defaults)"#), "{msg}");

    // A MAC given twice in one network.
    let msg = rejected(&one_net(
        "{}",
        r#"{"default/a": {"mac": "02:00:00:00:00:01"}, "default/b": {"mac": "02:00:00:00:00:01"}}"#,
    ))
    .to_string();
    assert!(
        msg.contains(r#"pod "default/b": mac 02:00:00:00:00:01 is also given to pod "default/a""#),
        "{msg}"
    );
}

#[test]
fn problem_display_and_accessors() {
    let e = rejected(&one_net("{}", r#"{"default/p": {"vlan": 4095}}"#));
    assert_eq!(e.problems().len(), 1);
    assert!(
        e.to_string()
            .starts_with("pod table rejected (1 problem): "),
        "{e}"
    );
    let p = &e.problems()[0];
    assert_eq!(
        (p.network.as_str(), &p.scope),
        ("net", &Scope::Pod("default/p".into()))
    );
    assert_eq!(p.message, "vlan 4095 is out of range 0..=4094");
}

#[test]
fn merged_config_serializes_in_the_tables_spelling() {
    let t = PodTable::parse(&fixture("valid.json")).unwrap();
    let v = serde_json::to_value(t.lookup("db-net", "default", "db-1").unwrap()).unwrap();
    assert_eq!(v["ips"], serde_json::json!(["10.10.0.11/24"]));
    assert_eq!(v["vlanQoS"], 5);
    assert_eq!(v["mac"], "02:00:00:00:10:0b");
    assert_eq!(v["dns"]["nameservers"], serde_json::json!(["10.10.0.53"]));
}

#[test]
fn ten_thousand_entries_parse_and_look_up() {
    use std::fmt::Write;
    let mut pods = String::new();
    for i in 0..10_000u32 {
        let (hi, lo) = (i / 250, i % 250 + 1);
        let sep = if i == 0 { "" } else { "," };
        write!(
            pods,
            r#"{sep}"ns-{}/pod-{i}": {{"ips": ["10.{hi}.{lo}.1/16", "fd00::{i:x}/64"], "vlan": {}}}"#,
            i % 100,
            i % 4000 + 1
        )
        .unwrap();
    }
    let json = one_net(
        r#"{"max_tx_rate": 1000, "dns": {"nameservers": ["10.0.0.53"]}}"#,
        &format!("{{{pods}}}"),
    );
    let start = std::time::Instant::now();
    let t = PodTable::parse(json.as_bytes()).unwrap();
    let parsed = start.elapsed();
    assert_eq!(t.entries(), 10_000);

    let start = std::time::Instant::now();
    for i in 0..10_000u32 {
        let p = t
            .lookup("net", &format!("ns-{}", i % 100), &format!("pod-{i}"))
            .unwrap();
        assert_eq!(p.vlan, Some((i % 4000 + 1) as u16));
        assert_eq!(p.max_tx_rate, Some(1000));
    }
    let looked_up = start.elapsed();
    assert_eq!(t.holder_of("net", ip("fd00::2710")), None);
    assert_eq!(t.holder_of("net", ip("fd00::270f")), Some("ns-99/pod-9999"));
    println!(
        "pod table: {} bytes, 10,000 entries parsed in {parsed:?}; 10,000 lookups in {looked_up:?}",
        json.len()
    );
}
