//! The CNI result: one version-independent model, rendered in (and read back from) the exact
//! shape of each spec version we speak.
//!
//! Shapes (SPEC.md of each tag):
//! - 0.3.0, 0.3.1, 0.4.0: every `ips` entry carries `"version": "4"|"6"`.
//! - 1.0.0: `version` is gone from `ips`.
//! - 1.1.0: interfaces may carry `mtu`, `socketPath`, `pciID`; routes may carry `mtu`, `advmss`,
//!   `priority`, `table`, `scope`.
//!
//! Fields a version does not define are never rendered in it, and are ignored when reading a
//! result of that version. Empty lists and an empty `dns` are omitted (all optional in the spec).
//! [`CniResult::parse`] reads prevResult, the CHECK input and a delegated IPAM plugin's output;
//! its failures are error 6 (decode).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{CniError, code};
use crate::version;
pub use sriov_hw::cidr::{IpCidr, ParseCidrError};

/// An interface the plugin created or moved. `mac` and `pci_id` are kept as text so results of
/// other plugins (prevResult) with other address formats still read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// The interface name (the pod-side `CNI_IFNAME` for ours).
    pub name: String,
    /// Hardware address as text (`aa:bb:cc:dd:ee:ff` for ours).
    pub mac: Option<String>,
    /// The netns path; set for interfaces inside the sandbox.
    pub sandbox: Option<String>,
    /// 1.1.0 only.
    pub mtu: Option<u32>,
    /// 1.1.0 only: the VF's PCI address.
    pub pci_id: Option<String>,
    /// 1.1.0 only (vhost-user style plugins; we never set it).
    pub socket_path: Option<String>,
}

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpCidr,
    /// The subnet's gateway, if IPAM gave one.
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`]; absent in IPAM plugin output.
    pub interface: Option<usize>,
}

/// A route. Fields after `gw` exist in 1.1.0 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` for a default route).
    pub dst: IpCidr,
    /// Next hop; `None` = the interface's gateway or on-link.
    pub gw: Option<IpAddr>,
    /// Path MTU in bytes for this route (1.1.0).
    pub mtu: Option<u32>,
    /// TCP advertised MSS in bytes (1.1.0).
    pub advmss: Option<u32>,
    /// Route metric; lower wins (1.1.0).
    pub priority: Option<u32>,
    /// Routing table ID; `None` = main (1.1.0).
    pub table: Option<u32>,
    /// Route scope, as the kernel numbers it (0 = universe, 253 = link; 1.1.0).
    pub scope: Option<u8>,
}

impl Route {
    /// A route with only destination and gateway (what every version can carry).
    pub fn new(dst: IpCidr, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// Resolver settings, in results and in the netconf's `dns`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    /// Resolver addresses, in order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain for short-name lookups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options (`ndots:5`…), as for resolv.conf.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Nothing set: rendered as no `dns` key at all.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The result of ADD (and the prevResult of DEL/CHECK), independent of the spec version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniResult {
    /// Interfaces the plugin created or moved (ours: the one VF).
    pub interfaces: Vec<Interface>,
    /// Addresses, each pointing at its interface by index.
    pub ips: Vec<IpConfig>,
    /// Routes to install in the container.
    pub routes: Vec<Route>,
    /// Resolver settings, from IPAM or the netconf's `dns`.
    pub dns: Dns,
}

fn is_v1_1(version: &str) -> bool {
    version == "1.1.0"
}

/// 0.3.0, 0.3.1 and 0.4.0 tag each IP with its family.
fn has_ip_version(version: &str) -> bool {
    version.starts_with("0.")
}

fn put<T: Serialize>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.to_string(), json!(v));
    }
}

impl CniResult {
    /// The spec's JSON for `version` (one of [`version::SUPPORTED`], else error 1), with
    /// `cniVersion` set to it.
    pub fn render(&self, version: &str) -> Result<Value, CniError> {
        version::check(version)?;
        let v11 = is_v1_1(version);
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version));
        if !self.interfaces.is_empty() {
            let list = self.interfaces.iter().map(|i| {
                let mut m = Map::new();
                m.insert("name".into(), json!(i.name));
                put(&mut m, "mac", i.mac.as_ref());
                put(
                    &mut m,
                    "sandbox",
                    i.sandbox.as_ref().filter(|s| !s.is_empty()),
                );
                if v11 {
                    put(&mut m, "mtu", i.mtu);
                    put(&mut m, "socketPath", i.socket_path.as_ref());
                    put(&mut m, "pciID", i.pci_id.as_ref());
                }
                Value::Object(m)
            });
            out.insert("interfaces".into(), Value::Array(list.collect()));
        }
        if !self.ips.is_empty() {
            let list = self.ips.iter().map(|ip| {
                let mut m = Map::new();
                if has_ip_version(version) {
                    m.insert(
                        "version".into(),
                        json!(if ip.address.is_ipv4() { "4" } else { "6" }),
                    );
                }
                m.insert("address".into(), json!(ip.address));
                put(&mut m, "gateway", ip.gateway);
                put(&mut m, "interface", ip.interface);
                Value::Object(m)
            });
            out.insert("ips".into(), Value::Array(list.collect()));
        }
        if !self.routes.is_empty() {
            let list = self.routes.iter().map(|r| {
                let mut m = Map::new();
                m.insert("dst".into(), json!(r.dst));
                put(&mut m, "gw", r.gw);
                if v11 {
                    put(&mut m, "mtu", r.mtu);
                    put(&mut m, "advmss", r.advmss);
                    put(&mut m, "priority", r.priority);
                    put(&mut m, "table", r.table);
                    put(&mut m, "scope", r.scope);
                }
                Value::Object(m)
            });
            out.insert("routes".into(), Value::Array(list.collect()));
        }
        if !self.dns.is_empty() {
            out.insert("dns".into(), json!(self.dns));
        }
        Ok(Value::Object(out))
    }

    /// [`render`](Self::render) as the one line printed on stdout.
    pub fn to_json(&self, version: &str) -> Result<String, CniError> {
        Ok(self.render(version)?.to_string())
    }

    /// Reads a result shaped for `version`: fields that version does not define are ignored;
    /// unknown fields are ignored. Any malformed value is error 6 naming the field.
    pub fn parse(value: &Value, version: &str) -> Result<Self, CniError> {
        version::check(version)?;
        let wire: WireResult =
            serde_json::from_value(value.clone()).map_err(|e| decode(format!("result: {e}")))?;
        let v11 = is_v1_1(version);
        let interfaces = wire
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac.filter(|s| !s.is_empty()),
                sandbox: i.sandbox.filter(|s| !s.is_empty()),
                mtu: i.mtu.filter(|_| v11),
                pci_id: i.pci_id.filter(|s| v11 && !s.is_empty()),
                socket_path: i.socket_path.filter(|s| v11 && !s.is_empty()),
            })
            .collect();
        let mut ips = Vec::with_capacity(wire.ips.len());
        for (n, ip) in wire.ips.into_iter().enumerate() {
            let address: IpCidr = ip
                .address
                .parse()
                .map_err(|e| decode(format!("result: ips[{n}].address: {e}")))?;
            if has_ip_version(version)
                && let Some(ver) = ip.version
            {
                let want = if address.is_ipv4() { "4" } else { "6" };
                if ver != want {
                    return Err(decode(format!(
                        "result: ips[{n}].version {ver:?} does not match address {address}"
                    )));
                }
            }
            let gateway = parse_ip(ip.gateway, || format!("ips[{n}].gateway"))?;
            ips.push(IpConfig {
                address,
                gateway,
                interface: ip.interface,
            });
        }
        let mut routes = Vec::with_capacity(wire.routes.len());
        for (n, r) in wire.routes.into_iter().enumerate() {
            let dst: IpCidr = r
                .dst
                .parse()
                .map_err(|e| decode(format!("result: routes[{n}].dst: {e}")))?;
            let gw = parse_ip(r.gw, || format!("routes[{n}].gw"))?;
            let mut route = Route::new(dst, gw);
            if v11 {
                route.mtu = r.mtu;
                route.advmss = r.advmss;
                route.priority = r.priority;
                route.table = r.table;
                route.scope = r.scope;
            }
            routes.push(route);
        }
        Ok(CniResult {
            interfaces,
            ips,
            routes,
            dns: wire.dns.unwrap_or_default(),
        })
    }

    /// Parses a plugin's stdout (a delegated IPAM plugin's answer) as a result of `version`.
    pub fn parse_bytes(bytes: &[u8], version: &str) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| decode("result is not valid JSON").with_details(e.to_string()))?;
        Self::parse(&v, version)
    }
}

fn decode(msg: impl Into<String>) -> CniError {
    CniError::new(code::DECODE, msg)
}

fn parse_ip(s: Option<String>, field: impl Fn() -> String) -> Result<Option<IpAddr>, CniError> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| decode(format!("result: {}: invalid IP address {s:?}", field()))),
    }
}

// What any version may hold, read leniently; `render`'s per-version rules apply on the way in
// through `parse`.
#[derive(Deserialize)]
struct WireResult {
    #[serde(default)]
    interfaces: Vec<WireInterface>,
    #[serde(default)]
    ips: Vec<WireIp>,
    #[serde(default)]
    routes: Vec<WireRoute>,
    dns: Option<Dns>,
}

#[derive(Deserialize)]
struct WireInterface {
    name: String,
    mac: Option<String>,
    sandbox: Option<String>,
    mtu: Option<u32>,
    #[serde(rename = "pciID")]
    pci_id: Option<String>,
    #[serde(rename = "socketPath")]
    socket_path: Option<String>,
}

#[derive(Deserialize)]
struct WireIp {
    version: Option<String>,
    address: String,
    gateway: Option<String>,
    interface: Option<usize>,
}

#[derive(Deserialize)]
struct WireRoute {
    dst: String,
    gw: Option<String>,
    mtu: Option<u32>,
    advmss: Option<u32>,
    priority: Option<u32>,
    table: Option<u32>,
    scope: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> IpCidr {
        s.parse().unwrap()
    }

    /// A VF result as ADD builds it: one pod interface, dual stack, routes with 1.1.0 extras.
    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "net1".into(),
                mac: Some("02:00:00:00:00:01".into()),
                sandbox: Some("/var/run/netns/cni-1234".into()),
                mtu: Some(9000),
                pci_id: Some("0000:3b:02.1".into()),
                socket_path: None,
            }],
            ips: vec![
                IpConfig {
                    address: cidr("10.10.0.5/24"),
                    gateway: Some("10.10.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: cidr("fd00::5/64"),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![
                Route {
                    mtu: Some(1400),
                    table: Some(100),
                    ..Route::new(cidr("0.0.0.0/0"), Some("10.10.0.1".parse().unwrap()))
                },
                Route::new(cidr("fd01::/64"), None),
            ],
            dns: Dns {
                nameservers: vec!["10.10.0.53".into()],
                domain: None,
                search: vec!["svc.local".into()],
                options: vec![],
            },
        }
    }

    /// The same result without what only 1.1.0 can carry.
    fn without_1_1(mut r: CniResult) -> CniResult {
        for i in &mut r.interfaces {
            i.mtu = None;
            i.pci_id = None;
            i.socket_path = None;
        }
        for rt in &mut r.routes {
            *rt = Route::new(rt.dst, rt.gw);
        }
        r
    }

    #[test]
    fn cidr_parses_and_rejects() {
        let c = cidr("10.1.2.3/24");
        assert_eq!(c.to_string(), "10.1.2.3/24");
        assert_eq!(cidr("fd00::1/128").prefix, 128);
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "fd00::1/129",
            "10.1.2/24",
            "10.1.2.3/",
            "10.1.2.3/+4",
            "10.1.2.3/24/1",
            "/24",
            "10.1.2.3/0024",
            "x/1",
        ] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn every_version_renders_and_round_trips() {
        for v in version::SUPPORTED {
            let out = sample().render(v).unwrap();
            assert_eq!(out["cniVersion"], *v);
            let back = CniResult::parse(&out, v).unwrap();
            let want = if *v == "1.1.0" {
                sample()
            } else {
                without_1_1(sample())
            };
            assert_eq!(back, want, "round trip in {v}");
            // The text form parses too.
            let text = sample().to_json(v).unwrap();
            assert_eq!(CniResult::parse_bytes(text.as_bytes(), v).unwrap(), want);
        }
    }

    #[test]
    fn ip_version_only_before_1_0() {
        for v in ["0.3.0", "0.3.1", "0.4.0"] {
            let out = sample().render(v).unwrap();
            assert_eq!(out["ips"][0]["version"], "4", "{v}");
            assert_eq!(out["ips"][1]["version"], "6", "{v}");
        }
        for v in ["1.0.0", "1.1.0"] {
            let out = sample().render(v).unwrap();
            assert!(out["ips"][0].get("version").is_none(), "{v}");
            assert_eq!(out["ips"][0]["address"], "10.10.0.5/24");
            assert_eq!(out["ips"][0]["gateway"], "10.10.0.1");
            assert_eq!(out["ips"][0]["interface"], 0);
            assert!(out["ips"][1].get("gateway").is_none());
        }
    }

    #[test]
    fn mtu_pci_id_and_route_extras_only_in_1_1() {
        for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
            let out = sample().render(v).unwrap();
            let i = &out["interfaces"][0];
            assert!(
                i.get("mtu").is_none() && i.get("pciID").is_none(),
                "{v}: {i}"
            );
            let r = &out["routes"][0];
            assert_eq!(r.as_object().unwrap().len(), 2, "{v}: {r}");
        }
        let out = sample().render("1.1.0").unwrap();
        let i = &out["interfaces"][0];
        assert_eq!(i["mtu"], 9000);
        assert_eq!(i["pciID"], "0000:3b:02.1");
        assert!(i.get("socketPath").is_none());
        assert_eq!(out["routes"][0]["mtu"], 1400);
        assert_eq!(out["routes"][0]["table"], 100);
        assert!(out["routes"][0].get("advmss").is_none());
        assert!(out["routes"][1].get("gw").is_none());
    }

    #[test]
    fn common_fields_and_omissions() {
        let out = sample().render("1.0.0").unwrap();
        let i = &out["interfaces"][0];
        assert_eq!(i["name"], "net1");
        assert_eq!(i["mac"], "02:00:00:00:00:01");
        assert_eq!(i["sandbox"], "/var/run/netns/cni-1234");
        assert_eq!(out["dns"]["nameservers"][0], "10.10.0.53");
        assert_eq!(out["dns"]["search"][0], "svc.local");
        assert!(out["dns"].get("domain").is_none() && out["dns"].get("options").is_none());
        // An empty result (vfio-pci VF without IPAM) is just the version.
        let empty = CniResult::default().render("0.4.0").unwrap();
        assert_eq!(empty, json!({"cniVersion": "0.4.0"}));
    }

    #[test]
    fn render_rejects_unknown_version() {
        let e = sample().render("0.2.0").unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        assert!(e.msg.contains("0.2.0"), "{}", e.msg);
    }

    #[test]
    fn parses_ipam_output_and_spec_examples() {
        // host-local's shape in 0.4.0: no interfaces, no interface index.
        let ipam = br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.7/16","gateway":"10.1.0.1"}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
        let r = CniResult::parse_bytes(ipam, "0.4.0").unwrap();
        assert!(r.interfaces.is_empty());
        assert_eq!(r.ips[0].address, cidr("10.1.0.7/16"));
        assert_eq!(r.ips[0].interface, None);
        assert_eq!(r.routes[0].gw, None);
        assert!(r.dns.is_empty());
        // The spec's prevResult example (host interfaces without sandbox), unknown keys ignored.
        let prev = json!({"ips":[{"version":"4","address":"10.0.0.5/32","interface":2}],
            "interfaces":[{"name":"cni0","mac":"00:11:22:33:44:55"},{"name":"eth0","mac":"99:88:77:66:55:44",
            "sandbox":"/var/run/netns/blue"}],"dns":{"nameservers":["10.1.0.1"]},"extra":true});
        let r = CniResult::parse(&prev, "0.4.0").unwrap();
        assert_eq!(r.interfaces[0].sandbox, None);
        assert_eq!(r.ips[0].interface, Some(2));
        // 1.0.0 results carry no version; one present is ignored.
        let r = CniResult::parse(
            &json!({"ips":[{"address":"fd00::2/64","version":"4"}]}),
            "1.0.0",
        );
        assert_eq!(r.unwrap().ips[0].address, cidr("fd00::2/64"));
    }

    #[test]
    fn parse_errors_are_code_6_and_name_the_field() {
        let cases = [
            (json!({"ips":[{"address":"10.0.0.5"}]}), "ips[0].address"),
            (
                json!({"ips":[{"address":"10.0.0.5/24","version":"6"}]}),
                "ips[0].version",
            ),
            (
                json!({"ips":[{"address":"10.0.0.5/24","gateway":"nope"}]}),
                "ips[0].gateway",
            ),
            (json!({"routes":[{"dst":"10.0.0.0/33"}]}), "routes[0].dst"),
            (
                json!({"routes":[{"dst":"10.0.0.0/8","gw":"1.2.3"}]}),
                "routes[0].gw",
            ),
            (json!({"interfaces":[{"mac":"02:00:00:00:00:01"}]}), "name"),
            (json!({"ips":"10.0.0.5/24"}), "invalid type"),
            (json!([1, 2]), "result"),
        ];
        for (v, frag) in cases {
            let e = CniResult::parse(&v, "0.4.0").unwrap_err();
            assert_eq!(e.code, code::DECODE, "{v}");
            assert!(e.msg.contains(frag), "{v}: {}", e.msg);
        }
        let e = CniResult::parse_bytes(b"{not json", "1.0.0").unwrap_err();
        assert_eq!(e.code, code::DECODE);
    }
}
