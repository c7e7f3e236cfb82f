//! What igb refuses, through the whole CNI: an 802.1ad VLAN (EPROTONOSUPPORT), a non-zero minimum
//! rate (EINVAL) and a VF link state (EOPNOTSUPP). Each ADD must fail with an error that names
//! the PF, the VF and the operation, and leave the VF, the pod namespace and the ledger as they
//! were: the settings applied before the refused one are rolled back.

use serde_json::{Value, json};

use super::inventory::VfInfo;
use super::report::info;
use super::{Ctx, VF_POOL};
use crate::{Netns, unique_name};

/// (check name, netconf fields, a word the error must contain for the operation).
fn cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "vlan_802_1ad",
            json!({"vlan": 300, "vlanQoS": 2, "vlanProto": "802.1ad"}),
            "vlan",
        ),
        (
            "min_tx_rate",
            json!({"vlan": 300, "max_tx_rate": 100, "min_tx_rate": 10}),
            "rate",
        ),
        (
            "link_state",
            json!({"vlan": 300, "max_tx_rate": 100, "spoofchk": "off", "trust": "on",
                   "link_state": "enable"}),
            "link",
        ),
    ]
}

pub fn run(ctx: &mut Ctx, vf: &VfInfo) {
    // Only meaningful where the driver refuses these; other drivers may accept some of them.
    if ctx.pf.driver != "igb" {
        info(format!(
            "refusal checks are for igb; PF driver is {}: skipped",
            ctx.pf.driver
        ));
        return;
    }
    for (name, extra, op) in cases() {
        let ns = Netns::new(&unique_name("hr"));
        let cid = unique_name("r");
        let conf = ctx.conf(&vf.pci, VF_POOL, extra);
        let out = ctx.cni("ADD", &cid, &ns.path(), "bad-0", &conf);
        let text = format!("{} {}", out.json["msg"], out.json["details"]);
        info(format!("refused {name}: code {} {text}", out.code()));
        let want_vf = format!("VF {}", vf.index);
        let names_it = text.contains(&ctx.pf.name)
            && text.contains(&want_vf)
            && text.to_lowercase().contains(op);
        ctx.report
            .expect(&format!("refuse.{name}.error"), !out.ok && names_it, || {
                format!(
                    "ok={} error {text} should name {} {want_vf} {op}",
                    out.ok, ctx.pf.name
                )
            });
        ctx.report
            .check(&format!("refuse.{name}.rolled_back"), ctx.restored(vf));
        let links = ns.ip_json(&["link", "show"]);
        let only_lo = links
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["ifname"] == "lo"));
        ctx.report
            .expect(&format!("refuse.{name}.netns_untouched"), only_lo, || {
                format!("{links}")
            });
        let atts = ctx.agent.attachments();
        let held = atts
            .as_ref()
            .map(|a| a.iter().any(|a| a.to_string().contains(&cid)));
        ctx.report.expect(
            &format!("refuse.{name}.ledger_clean"),
            held == Ok(false),
            || format!("{atts:?}"),
        );
        // A DEL after a failed ADD (runtimes send one) succeeds and changes nothing.
        let out = ctx.cni("DEL", &cid, &ns.path(), "bad-0", &conf);
        ctx.report
            .expect(&format!("refuse.{name}.del_ok"), out.ok, || {
                format!("{} {}", out.json, out.stderr)
            });
    }
}
