//! The PF's bridge-family nftables table: VLAN isolation and MAC spoof check, the emulated
//! equivalents of a VF's port VLAN and spoofchk (this kernel has neither 802.1Q devices nor bridge
//! VLAN filtering).
//!
//! One table per PF, `bridge sriov_emu_<pf>`, always rebuilt as a whole from the registers, in one
//! `nft -f -` transaction (create-if-missing, delete, re-create), so the rules match the registers
//! exactly and never half-apply:
//!
//! ```text
//! table bridge sriov_emu_<pf> {
//!   set vlan_untagged { type ifname; elements = { "<pf>r0", … } }   # one set per VLAN group
//!   set vlan_q100     { type ifname; elements = { "<pf>r1", … } }   # 802.1Q VLAN 100
//!   set vlan_ad100    { type ifname; elements = { … } }             # 802.1ad VLAN 100
//!   chain vlan_isolation {
//!     type filter hook forward priority 0; policy accept;
//!     iifname @vlan_q100 oifname != @vlan_q100 drop                # one rule per group
//!   }
//!   chain spoofchk {
//!     type filter hook prerouting priority 0; policy accept;
//!     iifname "<pf>r1" ether saddr != <admin mac> drop             # spoofchk on + MAC set
//!   }
//! }
//! ```
//!
//! Every representor is in exactly one group (VLAN 0 = untagged, whatever the protocol), so a frame
//! may only be forwarded between representors of the same group. 802.1ad VLANs are a VLAN space
//! distinct from 802.1Q (as an S-tag and a C-tag with the same ID never meet); QoS is recorded only.
//! Rules cost O(groups), sets O(VFs), so 256 VFs stay cheap.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use super::{EmulateError, EmulatedNic};
use crate::vfctl::{VfState, VlanProto};

/// The nftables table name of PF `pf` (a validated name: `[a-zA-Z0-9_-]`, which nft accepts in
/// identifiers).
pub fn table_name(pf: &str) -> String {
    format!("sriov_emu_{pf}")
}

/// The set holding the representors of one VLAN group.
fn group_set(state: &VfState) -> String {
    match (state.vlan.vlan, state.vlan.proto) {
        (0, _) => "vlan_untagged".to_string(),
        (v, VlanProto::Dot1Q) => format!("vlan_q{v}"),
        (v, VlanProto::Dot1Ad) => format!("vlan_ad{v}"),
    }
}

/// The full `nft -f` script that replaces PF `nic`'s table with one built from `states`.
pub fn ruleset(nic: &EmulatedNic, states: &[VfState]) -> String {
    let table = table_name(&nic.pf);
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut spoof = Vec::new();
    for (vf, st) in nic.vfs.iter().zip(states) {
        groups
            .entry(group_set(st))
            .or_default()
            .push(&vf.representor);
        if let Some(mac) = st.mac
            && !mac.is_zero()
            && st.spoofchk.unwrap_or(true)
        {
            spoof.push((vf.representor.as_str(), mac));
        }
    }
    let mut s = String::new();
    // `writeln!` into a String cannot fail.
    let _ = writeln!(s, "table bridge {table} {{}}");
    let _ = writeln!(s, "delete table bridge {table}");
    let _ = writeln!(s, "table bridge {table} {{");
    for (set, members) in &groups {
        let elems = members
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(s, "  set {set} {{ type ifname; elements = {{ {elems} }} }}");
    }
    let _ = writeln!(s, "  chain vlan_isolation {{");
    let _ = writeln!(s, "    type filter hook forward priority 0; policy accept;");
    for set in groups.keys() {
        let _ = writeln!(s, "    iifname @{set} oifname != @{set} drop");
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  chain spoofchk {{");
    let _ = writeln!(
        s,
        "    type filter hook prerouting priority 0; policy accept;"
    );
    for (rep, mac) in spoof {
        let _ = writeln!(s, "    iifname \"{rep}\" ether saddr != {mac} drop");
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

/// Runs `nft -f -` with `script` on stdin.
fn nft_script(script: &str) -> Result<(), EmulateError> {
    let cmd_err = |message: String| EmulateError::Command {
        command: "nft -f -".to_string(),
        message,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cmd_err(format!("cannot run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| cmd_err(format!("writing the ruleset: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cmd_err(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(cmd_err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Replaces the PF's table with one built from `states` (indexed like `nic.vfs`).
pub fn apply(nic: &EmulatedNic, states: &[VfState]) -> Result<(), EmulateError> {
    nft_script(&ruleset(nic, states))
}

/// Deletes PF `pf`'s table; succeeds if there is none.
pub fn delete(pf: &str) -> Result<(), EmulateError> {
    let t = table_name(pf);
    nft_script(&format!("table bridge {t} {{}}\ndelete table bridge {t}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulated::registers::default_state;
    use crate::vfctl::VfVlan;

    #[test]
    fn groups_by_vlan_and_proto_and_spoofchecks_only_set_macs() {
        let nic = EmulatedNic::describe("e0", 0, 4);
        let mut st: Vec<VfState> = (0..4).map(default_state).collect();
        st[1].vlan = VfVlan {
            vlan: 100,
            qos: 0,
            proto: VlanProto::Dot1Q,
        };
        st[2].vlan = VfVlan {
            vlan: 100,
            qos: 5,
            proto: VlanProto::Dot1Ad,
        };
        st[3].mac = Some("02:00:00:00:00:03".parse().unwrap());
        st[0].mac = Some("02:00:00:00:00:04".parse().unwrap());
        st[0].spoofchk = Some(false);
        let r = ruleset(&nic, &st);
        assert!(r.contains("set vlan_untagged { type ifname; elements = { \"e0r0\", \"e0r3\" } }"));
        assert!(r.contains("set vlan_q100 { type ifname; elements = { \"e0r1\" } }"));
        assert!(r.contains("set vlan_ad100 { type ifname; elements = { \"e0r2\" } }"));
        assert!(r.contains("iifname @vlan_q100 oifname != @vlan_q100 drop"));
        assert!(r.contains("iifname \"e0r3\" ether saddr != 02:00:00:00:00:03 drop"));
        assert!(!r.contains("\"e0r0\" ether"));
        assert!(r.starts_with("table bridge sriov_emu_e0 {}\ndelete table bridge sriov_emu_e0\n"));
    }
}
