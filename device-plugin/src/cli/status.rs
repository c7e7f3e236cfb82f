//! `status`: what the running agent holds: attachments (pod, VF, PF, IPs, state) and the free VFs
//! of each pool, as JSON or a table.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sriov_proto::node::node_client::NodeClient;
use sriov_proto::node::{Attachment, StatusRequest, StatusResponse};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent's node API socket.
    #[arg(long, default_value = sriov_proto::node::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Asks the agent for its status and prints it. Fails (non-zero exit) if the agent is not
/// reachable.
pub fn run(args: Args) -> anyhow::Result<()> {
    let resp = super::block_on(fetch(&args.socket))??;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&resp))?);
    } else {
        print_table(&resp);
    }
    Ok(())
}

async fn fetch(socket: &std::path::Path) -> anyhow::Result<StatusResponse> {
    let unreachable = || format!("agent unreachable at {}", socket.display());
    let channel = sriov_proto::uds_endpoint(socket)
        .with_context(unreachable)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(unreachable)?;
    let resp = NodeClient::new(channel)
        .status(StatusRequest {})
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "the agent at {} answered: {}",
                socket.display(),
                s.message()
            )
        })?;
    Ok(resp.into_inner())
}

/// The IPs an attachment holds: its reserved ones, else those in its stored CNI result.
fn ips(a: &Attachment) -> Vec<String> {
    if !a.reserved_ips.is_empty() {
        return a.reserved_ips.clone();
    }
    let Ok(v) = serde_json::from_str::<Value>(&a.result_json) else {
        return Vec::new();
    };
    v.get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|i| i.get("address").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn state_name(a: &Attachment) -> &'static str {
    match a.state() {
        sriov_proto::node::State::Planned => "planned",
        sriov_proto::node::State::Committed => "committed",
        sriov_proto::node::State::Unspecified => "unspecified",
    }
}

/// The `--json` document.
pub fn to_json(r: &StatusResponse) -> Value {
    let attachments: Vec<Value> = r
        .attachments
        .iter()
        .map(|a| {
            let key = a.key.clone().unwrap_or_default();
            json!({
                "container_id": key.container_id,
                "ifname": key.ifname,
                "pod": crate::agent::reclaim::pod_of(a),
                "network": a.network,
                "netns": a.netns_path,
                "vf_pci": a.vf_pci,
                "pf": a.pf_name,
                "vf_index": a.vf_index,
                "ips": ips(a),
                "state": state_name(a),
                "restart_needed": (!a.restart_needed.is_empty()).then_some(&a.restart_needed),
            })
        })
        .collect();
    let pools: Vec<Value> = r
        .pools
        .iter()
        .map(|p| {
            json!({
                "resource": p.resource,
                "total": p.total,
                "free": p.free,
                "out_of_service": out_of_service(&p.out_of_service),
            })
        })
        .collect();
    json!({
        "attachments": attachments,
        "pools": pools,
        "pod_table": {
            "loads": r.pod_table_loads,
            "error": (!r.pod_table_error.is_empty()).then_some(&r.pod_table_error),
        },
        "leases": {"held": r.leased_ips, "fenced": r.fenced_ips},
        "quarantined": out_of_service(&r.quarantined),
    })
}

fn out_of_service(list: &[sriov_proto::node::OutOfService]) -> Vec<Value> {
    list.iter()
        .map(|o| json!({"pci": o.pci, "reason": o.reason}))
        .collect()
}

fn print_table(r: &StatusResponse) {
    println!(
        "{:<24} {:<16} {:<14} {:<12} {:<12} {:>3} {:<10} IPS",
        "POD", "CONTAINER", "IFNAME", "VF", "PF", "VF#", "STATE"
    );
    for a in &r.attachments {
        let key = a.key.clone().unwrap_or_default();
        let short: String = key.container_id.chars().take(16).collect();
        println!(
            "{:<24} {:<16} {:<14} {:<12} {:<12} {:>3} {:<10} {}",
            crate::agent::reclaim::pod_of(a),
            short,
            key.ifname,
            a.vf_pci,
            a.pf_name,
            a.vf_index,
            state_name(a),
            ips(a).join(",")
        );
        if !a.restart_needed.is_empty() {
            println!("  restart needed: {}", a.restart_needed);
        }
    }
    for p in &r.pools {
        println!(
            "pool {}: {}/{} free {}",
            p.resource,
            p.free.len(),
            p.total,
            p.free.join(",")
        );
        for o in &p.out_of_service {
            println!("  out of service {}: {}", o.pci, o.reason);
        }
    }
    for o in &r.quarantined {
        println!("quarantined {}: {}", o.pci, o.reason);
    }
    if !r.pod_table_error.is_empty() {
        println!("pod table error: {}", r.pod_table_error);
    }
    for ip in &r.fenced_ips {
        println!("fenced (lease not renewed; off its VF): {ip}");
    }
}
