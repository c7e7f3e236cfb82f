//! The netdev VF path: kubelet allocates two VFs, `sriov` ADD configures them through the PF and
//! moves them into pod namespaces; one namespace is deleted before its DEL (the VF comes back
//! under its pod-side name), DEL with an empty `CNI_NETNS` puts everything back; then the
//! refusals, and ADD/DEL latency over several cycles.

use std::time::Instant;

use serde_json::{Value, json};

use super::inventory::VfInfo;
use super::report::{info, median_ms};
use super::{Ctx, VF_POOL, kubelet_side, pfview, refusals};
use crate::{Netns, unique_name};

/// One pod of the flow.
struct Pod {
    name: &'static str,
    cid: String,
    vf: VfInfo,
    ip: &'static str,
    mac: &'static str,
    conf: Value,
    ns: Netns,
}

/// Asks the stand-in to Allocate `n` VFs, one container each, and returns the VFs named by the
/// `PCIDEVICE_*` variable of each response (what Multus turns into the netconf's `deviceID`).
fn allocate(ctx: &mut Ctx, pool: &[VfInfo], n: usize) -> Option<Vec<VfInfo>> {
    let var = kubelet_side::env_name(VF_POOL);
    let mut got = Vec::new();
    for vf in pool.iter().take(n) {
        let resp = ctx.rt.block_on(kubelet_side::allocate(
            ctx.kubelet,
            VF_POOL,
            std::slice::from_ref(&vf.pci),
        ));
        let ok = match resp {
            Ok(r) if r.envs.get(&var) == Some(&vf.pci) => {
                got.push(vf.clone());
                Ok(())
            }
            Ok(r) => Err(format!("{var} = {:?}, want {}", r.envs.get(&var), vf.pci)),
            Err(e) => Err(e),
        };
        if !ctx
            .report
            .check(&format!("kubelet.allocate.{}", vf.pci), ok)
        {
            return None;
        }
    }
    Some(got)
}

pub fn run(ctx: &mut Ctx, pool: &[VfInfo]) {
    let Some(vfs) = allocate(ctx, pool, 3) else {
        return;
    };
    let pf = ctx.pf.name.clone();
    let mut pods = [
        Pod {
            name: "db-0",
            cid: unique_name("c"),
            vf: vfs[0].clone(),
            ip: "10.99.0.10/24",
            mac: "02:99:00:00:00:10",
            conf: json!({"vlan": 100, "vlanQoS": 3, "max_tx_rate": 100,
                         "spoofchk": "on", "trust": "on"}),
            ns: Netns::new(&unique_name("hp")),
        },
        Pod {
            name: "db-1",
            cid: unique_name("c"),
            vf: vfs[1].clone(),
            ip: "10.99.0.11/24",
            mac: "02:99:00:00:00:11",
            // The pod table's VLAN 200, QoS 5 and 200 Mbit/s override these.
            conf: json!({"vlan": 100, "vlanQoS": 1, "max_tx_rate": 50,
                         "spoofchk": "off", "trust": "off"}),
            ns: Netns::new(&unique_name("hp")),
        },
    ];
    // (vlan, qos, max_tx, spoofchk, trust) each pod should get.
    let want = [(100, 3, 100, true, true), (200, 5, 200, false, false)];
    for (pod, want) in pods.iter_mut().zip(want) {
        let conf = ctx.conf(&pod.vf.pci, VF_POOL, pod.conf.clone());
        pod.conf = conf;
        let out = ctx.cni("ADD", &pod.cid, &pod.ns.path(), pod.name, &pod.conf);
        let name = format!("cni.add.{}", pod.name);
        if !ctx
            .report
            .expect(&name, out.ok, || format!("{} {}", out.json, out.stderr))
        {
            continue;
        }
        ctx.report.check(
            &format!("cni.add.{}.result", pod.name),
            result_ok(&out.json, pod),
        );
        ctx.report.check(
            &format!("pf.vf{}.configured.{}", pod.vf.index, pod.name),
            pf_row_is(&pf, pod.vf.index, pod.mac, want),
        );
        ctx.report.check(
            &format!("netns.{}.net1", pod.name),
            in_pod(&pod.ns, pod.ip, pod.mac),
        );
        ctx.report.expect(
            &format!("host.{}.vf_left_host", pod.name),
            pfview::host_netdevs(&ctx.opts.sysfs, &pod.vf.pci).is_empty(),
            || format!("{:?}", pfview::host_netdevs(&ctx.opts.sysfs, &pod.vf.pci)),
        );
    }
    let count = ctx.agent.attachments().map(|a| a.len());
    ctx.report
        .expect("ledger.two_attachments", count == Ok(2), || {
            format!("{count:?}")
        });

    refusals::run(ctx, &vfs[2]);

    // db-0: the sandbox's namespace goes away before DEL.
    let p = &pods[0];
    p.ns.delete();
    let sysfs = ctx.opts.sysfs.clone();
    let back = pfview::wait_until(10, || pfview::host_netdevs(&sysfs, &p.vf.pci) == ["net1"]);
    ctx.report.expect("netns_gone.vf_back_as_net1", back, || {
        format!("{:?}", pfview::host_netdevs(&sysfs, &p.vf.pci))
    });
    let out = ctx.cni("DEL", &p.cid, "", p.name, &p.conf);
    ctx.report.expect("netns_gone.del_empty_netns", out.ok, || {
        format!("{} {}", out.json, out.stderr)
    });
    ctx.report
        .check("netns_gone.vf_restored", ctx.restored(&p.vf));
    // db-1: an ordinary DEL, then a repeated one.
    let p = &pods[1];
    let out = ctx.cni("DEL", &p.cid, &p.ns.path(), p.name, &p.conf);
    ctx.report.expect("cni.del.db-1", out.ok, || {
        format!("{} {}", out.json, out.stderr)
    });
    ctx.report
        .check("cni.del.db-1.vf_restored", ctx.restored(&p.vf));
    let out = ctx.cni("DEL", &p.cid, &p.ns.path(), p.name, &p.conf);
    ctx.report.expect("cni.del.repeated", out.ok, || {
        format!("{} {}", out.json, out.stderr)
    });
    let count = ctx.agent.attachments().map(|a| a.len());
    ctx.report
        .expect("ledger.empty_after_del", count == Ok(0), || {
            format!("{count:?}")
        });

    latency(ctx, &vfs[0]);
}

/// The CNI result names net1 in the sandbox with the pod's MAC and fixed IP.
fn result_ok(res: &Value, pod: &Pod) -> Result<(), String> {
    let ifs = res["interfaces"].as_array().cloned().unwrap_or_default();
    let net1 = ifs
        .iter()
        .find(|i| i["name"] == "net1" && i["sandbox"] == pod.ns.path().as_str())
        .ok_or_else(|| format!("no net1 in the sandbox: {res}"))?;
    if net1["mac"] != pod.mac {
        return Err(format!("net1 mac {} want {}", net1["mac"], pod.mac));
    }
    let has_ip = res["ips"]
        .as_array()
        .is_some_and(|ips| ips.iter().any(|i| i["address"] == pod.ip));
    if !has_ip {
        return Err(format!("no {} in {res}", pod.ip));
    }
    Ok(())
}

/// The PF reports the MAC, VLAN, QoS, max rate, spoof check and trust the pod should have.
fn pf_row_is(
    pf: &str,
    vf: u32,
    mac: &str,
    want: (u64, u64, u64, bool, bool),
) -> Result<(), String> {
    let r = pfview::vf_row(pf, vf)?;
    let got = (
        r.vlan,
        r.qos,
        r.max_tx,
        r.spoofchk == Some(want.3),
        r.trust == Some(want.4),
    );
    if r.mac != mac || got != (want.0, want.1, want.2, true, true) {
        return Err(format!(
            "PF reports [{}], want mac {mac} {want:?}",
            r.brief()
        ));
    }
    Ok(())
}

/// `net1` is in the pod's namespace, up, with the fixed IP and MAC.
fn in_pod(ns: &Netns, ip: &str, mac: &str) -> Result<(), String> {
    let a = ns.ip_json(&["addr", "show", "dev", "net1"]);
    let l = &a[0];
    if l.is_null() {
        return Err(format!("no net1 in {}: {}", ns.name, ns.ip_json(&["link"])));
    }
    let (addr, plen) = ip.split_once('/').unwrap_or((ip, ""));
    let has_ip = l["addr_info"].as_array().is_some_and(|v| {
        v.iter()
            .any(|i| i["local"] == addr && plen.parse::<u64>().ok() == i["prefixlen"].as_u64())
    });
    let up = l["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == "UP"));
    if l["address"] != mac || !has_ip || !up {
        return Err(format!("net1: {l}"));
    }
    Ok(())
}

/// ADD and DEL wall time (process start to exit, as a runtime sees it) over several cycles.
fn latency(ctx: &mut Ctx, vf: &VfInfo) {
    let conf = ctx.conf(
        &vf.pci,
        VF_POOL,
        json!({"vlan": 10, "max_tx_rate": 100, "spoofchk": "on"}),
    );
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    let mut failed = None;
    for i in 0..ctx.opts.iterations {
        let ns = Netns::new(&unique_name("hl"));
        let cid = unique_name("l");
        let t = Instant::now();
        let add = ctx.cni("ADD", &cid, &ns.path(), "lat-0", &conf);
        adds.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let del = ctx.cni("DEL", &cid, &ns.path(), "lat-0", &conf);
        dels.push(t.elapsed().as_secs_f64() * 1e3);
        if !(add.ok && del.ok) {
            failed = Some(format!("cycle {i}: ADD {} DEL {}", add.json, del.json));
            break;
        }
    }
    ctx.report
        .check("latency.cycles", failed.map_or(Ok(()), Err));
    ctx.report.check("latency.vf_restored", ctx.restored(vf));
    info(format!("ADD ms {adds:.1?} DEL ms {dels:.1?}"));
    let n = adds.len();
    ctx.report
        .metric("add_ms_median", json!(median_ms(&mut adds)));
    ctx.report
        .metric("del_ms_median", json!(median_ms(&mut dels)));
    ctx.report.metric("latency_cycles", json!(n));
}
