//! Max TX rate of an emulated VF: what the VF *sends* arrives on its representor, so it is shaped
//! there. Ingress cannot be shaped directly, so the representor's ingress qdisc redirects every
//! frame (a match-all u32 filter with `mirred egress redirect`) to an ifb device `<pf>q<i>`,
//! whose root tbf (rate, 32 KiB burst, 50 ms latency) holds the rate; ifb then hands the frames
//! back to the representor's receive path, i.e. to the bridge. Rate 0 removes the ingress qdisc
//! and the ifb. All of it is netlink requests ([`Netlink::set_root_tbf`],
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
/// Idempotent: re-applying replaces the rate.
pub async fn apply(
    nl: &Netlink,
    vf: &EmulatedVf,
    max_mbps: u32,
    group: u32,
) -> Result<(), EmulateError> {
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
    let rep = index_of(nl, &vf.representor).await?;
    nl.set_root_tbf(ifb, bucket(max_mbps)).await?;
    nl.set_ingress_redirect(rep, ifb).await?;
    Ok(())
}

/// Removes `vf`'s rate limit (ingress qdisc on the representor and the ifb); succeeds if there is
/// none, or if the representor is gone.
pub async fn clear(nl: &Netlink, vf: &EmulatedVf) -> Result<(), EmulateError> {
    if let Some(rep) = nl.topology_link(&vf.representor).await? {
        match nl.delete_ingress_qdisc(rep.index).await {
            // The representor went away meanwhile: so did its qdisc.
            Err(e) if e.is_not_found() => {}
            r => {
                r?;
            }
        }
    }
    nl.delete_link_by_name(&vf.ifb).await?;
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
