//! The DPDK path: a VF bound to vfio-pci (needs an IOMMU) is listed in its own pool, Allocate
//! hands out `/dev/vfio/<group>` and `/dev/vfio/vfio`, and `sriov` ADD configures the VF through
//! the PF but does not move anything into the pod namespace (there is no netdev), and still
//! returns the pod's IPAM result.

use std::path::Path;

use serde_json::json;

use super::inventory::VfInfo;
use super::report::info;
use super::{Ctx, VFIO_POOL, kubelet_side, pfview};
use crate::{Netns, unique_name};

fn write(path: &Path, what: &str) -> Result<(), String> {
    std::fs::write(path, what).map_err(|e| format!("write {what:?} to {}: {e}", path.display()))
}

/// Unbinds `pci` from its driver and binds it to vfio-pci (driver_override + drivers_probe).
pub fn bind(sysfs: &Path, pci: &str) -> Result<(), String> {
    let dev = sysfs.join("bus/pci/devices").join(pci);
    if pfview::iommu_group(sysfs, pci).is_none() {
        return Err(format!("{pci} has no IOMMU group (boot with an IOMMU)"));
    }
    if dev.join("driver").exists() {
        write(&dev.join("driver/unbind"), pci)?;
    }
    write(&dev.join("driver_override"), "vfio-pci")?;
    write(&sysfs.join("bus/pci/drivers_probe"), pci)?;
    match pfview::driver(sysfs, pci) {
        Some(d) if d == "vfio-pci" => Ok(()),
        d => Err(format!("{pci} driver after probe: {d:?}")),
    }
}

/// Gives `pci` back to `driver`.
pub fn unbind(sysfs: &Path, pci: &str, driver: &str) -> Result<(), String> {
    let dev = sysfs.join("bus/pci/devices").join(pci);
    write(&dev.join("driver/unbind"), pci)?;
    write(&dev.join("driver_override"), "\n")?;
    write(&sysfs.join(format!("bus/pci/drivers/{driver}/bind")), pci)
}

pub fn run(ctx: &mut Ctx, vf: &VfInfo) {
    let Some(group) = pfview::iommu_group(&ctx.opts.sysfs, &vf.pci) else {
        ctx.report
            .check("vfio.iommu_group", Err(format!("{} has none", vf.pci)));
        return;
    };
    let since = std::time::Instant::now() - std::time::Duration::from_secs(3600);
    let list = ctx.rt.block_on(kubelet_side::registered_list(
        ctx.kubelet,
        VFIO_POOL,
        1,
        since,
    ));
    if !ctx.report.check("vfio.kubelet_list", list.map(|_| ())) {
        return;
    }
    let resp = ctx.rt.block_on(kubelet_side::allocate(
        ctx.kubelet,
        VFIO_POOL,
        std::slice::from_ref(&vf.pci),
    ));
    let group_dev = format!("/dev/vfio/{group}");
    let specs = resp.as_ref().map(|r| {
        r.devices
            .iter()
            .map(|d| d.host_path.clone())
            .collect::<Vec<_>>()
    });
    let specs_ok = specs
        .as_ref()
        .is_ok_and(|s| s.contains(&group_dev) && s.iter().any(|p| p == "/dev/vfio/vfio"));
    ctx.report
        .expect("vfio.allocate_device_specs", specs_ok, || {
            format!("device specs {specs:?}, want {group_dev} and /dev/vfio/vfio")
        });
    ctx.report.expect(
        "vfio.group_device_exists",
        Path::new(&group_dev).exists(),
        || format!("{group_dev} missing"),
    );
    let env = resp
        .as_ref()
        .ok()
        .and_then(|r| r.envs.get(&kubelet_side::env_name(VFIO_POOL)).cloned());
    ctx.report.expect(
        "vfio.allocate_env",
        env.as_deref() == Some(vf.pci.as_str()),
        || format!("{env:?}"),
    );

    let ns = Netns::new(&unique_name("hv"));
    let cid = unique_name("v");
    let conf = ctx.conf(
        &vf.pci,
        VFIO_POOL,
        json!({"vlan": 400, "vlanQoS": 1, "max_tx_rate": 300, "spoofchk": "on"}),
    );
    let out = ctx.cni("ADD", &cid, &ns.path(), "dpdk-0", &conf);
    info(format!("vfio ADD result: {}", out.json));
    let has_ip = out.json["ips"]
        .as_array()
        .is_some_and(|ips| ips.iter().any(|i| i["address"] == "10.99.0.40/24"));
    ctx.report
        .expect("vfio.cni_add_result", out.ok && has_ip, || {
            format!("{} {}", out.json, out.stderr)
        });
    let links = ns.ip_json(&["link", "show"]);
    let only_lo = links
        .as_array()
        .is_some_and(|l| l.iter().all(|l| l["ifname"] == "lo"));
    ctx.report
        .expect("vfio.no_netns_move", only_lo, || format!("{links}"));
    let row = pfview::vf_row(&ctx.pf.name, vf.index);
    let configured = row
        .as_ref()
        .is_ok_and(|r| r.vlan == 400 && r.qos == 1 && r.max_tx == 300);
    ctx.report
        .expect("vfio.pf_side_configured", configured, || format!("{row:?}"));
    ctx.report.expect(
        "vfio.still_bound",
        pfview::driver(&ctx.opts.sysfs, &vf.pci).as_deref() == Some("vfio-pci"),
        || format!("{:?}", pfview::driver(&ctx.opts.sysfs, &vf.pci)),
    );
    let out = ctx.cni("DEL", &cid, &ns.path(), "dpdk-0", &conf);
    ctx.report.expect("vfio.cni_del", out.ok, || {
        format!("{} {}", out.json, out.stderr)
    });
    let vf_now = VfInfo {
        netdev: String::new(),
        ..vf.clone()
    };
    ctx.report.check("vfio.vf_restored", ctx.restored(&vf_now));
}
