//! Max TX rate of an emulated VF: what the VF *sends* arrives on its representor, so it is shaped
//! there. Ingress cannot be shaped directly, so the representor's ingress qdisc redirects every
//! frame (`u32 match u32 0 0` + `mirred egress redirect`) to an ifb device `<pf>q<i>`, whose root
//! tbf (`rate <N>mbit burst 32kb latency 50ms`) holds the rate; ifb then hands the frames back to
//! the representor's receive path, i.e. to the bridge. Rate 0 removes the ingress qdisc and the ifb.
//!
//! `tc` is run as a command: rtnetlink does not model tbf, and these calls are rare.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::{EmulateError, EmulatedVf};
use crate::netlink::Netlink;

/// Runs `tc -batch -` with `script`; `tolerate` lists stderr fragments that mean "already so".
fn tc_batch(script: &str, tolerate: &[&str]) -> Result<(), EmulateError> {
    let cmd_err = |message: String| EmulateError::Command {
        command: format!("tc -batch - <<< {:?}", script.trim()),
        message,
    };
    let mut child = Command::new("tc")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cmd_err(format!("cannot run tc: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| cmd_err(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cmd_err(e.to_string()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || tolerate.iter().any(|t| stderr.contains(t)) {
        Ok(())
    } else {
        Err(cmd_err(format!("{}: {}", out.status, stderr.trim())))
    }
}

/// Limits what `vf` sends to `max_mbps` Mbit/s (> 0); a new ifb joins link group `group`.
/// Idempotent: re-applying replaces the rate.
pub async fn apply(
    nl: &Netlink,
    vf: &EmulatedVf,
    max_mbps: u32,
    group: u32,
) -> Result<(), EmulateError> {
    match nl.topology_link(&vf.ifb).await? {
        Some(_) => nl.set_up_by_name(&vf.ifb, true).await?,
        None => nl.create_ifb(&vf.ifb, group).await?,
    }
    let (rep, ifb) = (&vf.representor, &vf.ifb);
    tc_batch(
        &format!(
            "qdisc replace dev {ifb} root tbf rate {max_mbps}mbit burst 32kb latency 50ms\n\
             qdisc replace dev {rep} handle ffff: ingress\n\
             filter del dev {rep} parent ffff:\n\
             filter add dev {rep} parent ffff: protocol all prio 1 u32 match u32 0 0 \
             action mirred egress redirect dev {ifb}\n"
        ),
        &[],
    )
}

/// Removes `vf`'s rate limit (ingress qdisc on the representor and the ifb); succeeds if there is
/// none, or if the representor is gone.
pub async fn clear(nl: &Netlink, vf: &EmulatedVf) -> Result<(), EmulateError> {
    if nl.topology_link(&vf.representor).await?.is_some() {
        tc_batch(
            &format!("qdisc del dev {} ingress\n", vf.representor),
            // "No ingress qdisc" is worded differently across kernels / iproute2 versions.
            &[
                "Invalid handle",
                "Cannot find device",
                "Cannot find specified qdisc",
            ],
        )?;
    }
    nl.delete_link_by_name(&vf.ifb).await?;
    Ok(())
}
