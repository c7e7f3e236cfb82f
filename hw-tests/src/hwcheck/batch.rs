//! One RTM_SETLINK carrying several IFLA_VF_* attributes, sent straight to the driver (no
//! one-at-a-time fallback): what ADD and DEL now send instead of one request per attribute. The
//! PF must report every attribute set, and a second such request must put the originals back.

use sriov_hw::netlink::Netlink;
use sriov_hw::vf::{VfChange, VfVlan, VlanProto};

use super::Ctx;
use super::inventory::VfInfo;
use super::pfview;

/// Sets VLAN, QoS, max rate, spoof check and trust on `vf` in one request, checks the PF's row,
/// then restores them in one request and checks the VF is as it was.
pub fn run(ctx: &mut Ctx, vf: &VfInfo) {
    let Some(orig) = ctx.original_row(vf.index).cloned() else {
        ctx.report.check(
            "batch.original_row",
            Err(format!("no row for VF {}", vf.index)),
        );
        return;
    };
    let pf = ctx.pf.name.clone();
    let set = VfChange {
        vlan: Some(VfVlan {
            vlan: 300,
            qos: 2,
            proto: VlanProto::Dot1Q,
        }),
        rate: Some((0, 300)),
        spoofchk: Some(!orig.spoofchk.unwrap_or(true)),
        trust: Some(!orig.trust.unwrap_or(false)),
        ..VfChange::default()
    };
    let undo = VfChange {
        vlan: Some(VfVlan {
            vlan: orig.vlan as u16,
            qos: orig.qos as u8,
            proto: VlanProto::Dot1Q,
        }),
        rate: Some((orig.min_tx as u32, orig.max_tx as u32)),
        spoofchk: orig.spoofchk,
        trust: orig.trust,
        ..VfChange::default()
    };
    let send = |c: VfChange| {
        let pf = pf.clone();
        ctx.rt.block_on(async move {
            let nl = Netlink::host().map_err(|e| e.to_string())?;
            nl.set_vf_many(&pf, vf.index, &c)
                .await
                .map_err(|e| e.to_string())
        })
    };
    let applied = send(set.clone()).and_then(|()| {
        let row = pfview::vf_row(&pf, vf.index)?;
        let want = (300, 2, 300, set.spoofchk, set.trust);
        let got = (row.vlan, row.qos, row.max_tx, row.spoofchk, row.trust);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "PF reports {}, want (vlan, qos, max_tx, spoofchk, trust) {want:?}",
                row.brief()
            ))
        }
    });
    ctx.report
        .check("batch.one_request_sets_every_attribute", applied);
    let restored = send(undo).and_then(|()| ctx.restored(vf));
    ctx.report
        .check("batch.one_request_restores_them", restored);
}
