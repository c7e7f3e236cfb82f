//! Max TX rate of an emulated VF: what the VF *sends* arrives on its representor, so it is shaped
//! there. Ingress cannot be shaped directly, so the representor's ingress qdisc redirects every
//! frame (a match-all u32 filter with `mirred egress redirect`) to an ifb device `<pf>q<i>`,
//! whose root tbf (rate, 32 KiB burst, 50 ms latency) holds the rate; ifb then hands the frames
//! back to the representor's receive path, i.e. to the bridge. Rate 0 removes the redirect and the
//! ifb's tbf; the idle ifb itself stays until the NIC is torn down (it is created on the VF's first
//! rate limit and reused), because deleting a link costs the kernel an RCU grace period — about
//! 20 ms that every DEL would pay. All of it is netlink requests ([`Netlink::set_root_tbf`],
//! [`Netlink::set_ingress_redirect`]).

use super::{EmulateError, EmulatedVf};
use crate::netlink::{Netlink, NetlinkError, TokenBucket};

/// The bucket for `max_mbps` Mbit/s, as `tc … tbf rate <N>mbit burst 32kb latency 50ms` sets it.
fn bucket(max_mbps: u32) -> TokenBucket {
    TokenBucket {
        rate: u64::from(max_mbps) * 125_000,
        burst: 32 * 1024,
        latency_us: 50_000,
    }
}

/// The index of link `name`, or the emulator's "not found" error.
async fn index_of(nl: &Netlink, name: &str) -> Result<u32, EmulateError> {
    match nl.topology_link(name).await? {
        Some(l) => Ok(l.index),
        None => Err(NetlinkError::NotFound {
            op: "find link",
            target: name.to_string(),
        }
        .into()),
    }
}

/// Limits what `vf` sends to `max_mbps` Mbit/s (> 0); a new ifb joins link group `group`.
/// Idempotent: re-applying replaces the rate. A VF whose representor is gone is skipped:
/// [`super::revive_vf`] applies the rate when it comes back.
pub async fn apply(
    nl: &Netlink,
    vf: &EmulatedVf,
    max_mbps: u32,
    group: u32,
) -> Result<(), EmulateError> {
    let Some(rep) = nl.topology_link(&vf.representor).await? else {
        return Ok(());
    };
    let ifb = match nl.topology_link(&vf.ifb).await? {
        Some(l) => {
            if !l.up {
                nl.set_up_by_name(&vf.ifb, true).await?;
            }
            l.index
        }
        None => {
            nl.create_ifb(&vf.ifb, group).await?;
            index_of(nl, &vf.ifb).await?
        }
    };
    nl.set_root_tbf(ifb, bucket(max_mbps)).await?;
    nl.set_ingress_redirect(rep.index, ifb).await?;
    Ok(())
}

/// Removes `vf`'s rate limit: the representor's ingress redirect and the ifb's tbf. Succeeds if
/// there is none, or if the representor or the ifb is gone.
pub async fn clear(nl: &Netlink, vf: &EmulatedVf) -> Result<(), EmulateError> {
    for (name, ingress) in [(&vf.representor, true), (&vf.ifb, false)] {
        let Some(link) = nl.topology_link(name).await? else {
            continue;
        };
        let removed = if ingress {
            nl.delete_ingress_qdisc(link.index).await
        } else {
            nl.delete_root_qdisc(link.index).await
        };
        match removed {
            // The link went away meanwhile: so did its qdisc.
            Err(e) if e.is_not_found() => {}
            r => {
                r?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn mbit_are_125000_bytes_per_second() {
        assert_eq!(bucket(100).rate, 12_500_000);
        assert_eq!(bucket(u32::MAX).rate, u64::from(u32::MAX) * 125_000);
    }
}
