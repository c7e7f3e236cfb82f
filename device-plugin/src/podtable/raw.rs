//! The pod table file's JSON shape, decoded loosely enough that one bad entry does not hide the
//! others: networks and pod maps keep their order and duplicate keys (serde_json's maps would
//! silently keep the last), and each entry stays a `serde_json::Value` until it is decoded on
//! its own, so its error can name it.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// `{"networks": {...}}`; anything else at the top level is refused by serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub networks: OrderedMap<RawNetwork>,
}

/// One network: `defaults` and `pods`. Decoded by hand so that unknown or repeated keys become
/// problems reported with the network's name instead of one serde error for the whole file.
#[derive(Default)]
pub(super) struct RawNetwork {
    pub defaults: Option<Value>,
    pub pods: OrderedMap<Value>,
    /// Keys other than `defaults` and `pods`, and repeated ones, in file order.
    pub bad_keys: Vec<String>,
}

/// An entry or the defaults, as written. Strings stay strings and numbers stay wide so that
/// validation can quote the offending value in its own words. `null` is the same as absent.
#[derive(Default)]
pub(super) struct RawEntry {
    pub ips: Option<Vec<String>>,
    /// An IP string or a list of them.
    pub gateway: Option<Value>,
    pub routes: Option<Vec<RawRoute>>,
    pub dns: Option<RawDns>,
    pub mac: Option<String>,
    pub vlan: Option<i64>,
    pub vlan_qos: Option<i64>,
    pub max_tx_rate: Option<i64>,
    pub min_tx_rate: Option<i64>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
}

/// The keys an entry or the defaults may hold.
pub(super) const ENTRY_KEYS: &str =
    "ips, gateway, routes, dns, mac, vlan, vlanQoS, max_tx_rate, min_tx_rate, spoofchk, trust";

impl RawEntry {
    /// Decodes key by key (rather than with a derived, deny-unknown-fields `Deserialize`) so each
    /// type error names its field and every unknown key is reported, not only the first.
    /// Problems are pushed to `problems`; the fields that decoded are kept.
    pub fn decode(value: Value, problems: &mut Vec<String>) -> RawEntry {
        let map = match value {
            Value::Object(m) => m,
            other => {
                problems.push(format!(
                    r#"must be an object like {{"ips": ["10.0.0.11/24"]}}, not {other}"#
                ));
                return RawEntry::default();
            }
        };
        let mut e = RawEntry::default();
        for (key, v) in map {
            fn get<T: serde::de::DeserializeOwned>(
                key: &str,
                v: Value,
                problems: &mut Vec<String>,
            ) -> Option<T> {
                serde_json::from_value::<Option<T>>(v)
                    .map_err(|err| problems.push(format!("{key}: {err}")))
                    .ok()
                    .flatten()
            }
            match key.as_str() {
                "ips" => e.ips = get(&key, v, problems),
                "gateway" => e.gateway = Some(v).filter(|v| !v.is_null()),
                "routes" => e.routes = get(&key, v, problems),
                "dns" => e.dns = get(&key, v, problems),
                "mac" => e.mac = get(&key, v, problems),
                "vlan" => e.vlan = get(&key, v, problems),
                "vlanQoS" => e.vlan_qos = get(&key, v, problems),
                "max_tx_rate" => e.max_tx_rate = get(&key, v, problems),
                "min_tx_rate" => e.min_tx_rate = get(&key, v, problems),
                "spoofchk" => e.spoofchk = get(&key, v, problems),
                "trust" => e.trust = get(&key, v, problems),
                _ => problems.push(format!(
                    "unknown key {key:?} (expected one of {ENTRY_KEYS})"
                )),
            }
        }
        e
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub dst: String,
    pub gw: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// A JSON object as an ordered list of its members, duplicates included.
pub(super) struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(kv) = m.next_entry::<String, V>()? {
                    out.push(kv);
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawNetwork {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NetVisitor;
        impl<'de> Visitor<'de> for NetVisitor {
            type Value = RawNetwork;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a network object {"defaults": {...}, "pods": {...}}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawNetwork, A::Error> {
                let mut net = RawNetwork::default();
                let (mut seen_defaults, mut seen_pods) = (false, false);
                while let Some(key) = m.next_key::<String>()? {
                    match key.as_str() {
                        "defaults" if !seen_defaults => {
                            seen_defaults = true;
                            // `null` is the same as absent.
                            net.defaults = Some(m.next_value::<Value>()?).filter(|v| !v.is_null());
                        }
                        "pods" if !seen_pods => {
                            seen_pods = true;
                            net.pods = m
                                .next_value::<Option<OrderedMap<Value>>>()?
                                .unwrap_or_default();
                        }
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                            net.bad_keys.push(key);
                        }
                    }
                }
                Ok(net)
            }
        }
        d.deserialize_map(NetVisitor)
    }
}
