//! Telling a VLAN's neighbours that an address now lives at a VF's MAC: a gratuitous ARP for
//! each IPv4 address and an unsolicited neighbour advertisement for each IPv6 one.
//!
//! A fixed IP that moves (the pod was rescheduled, or took another VF) comes back with a new MAC,
//! and peers that still cache the old one would send into the void until their entry expires.
//! [`announce`] waits (boundedly) for the VF's carrier in the pod's namespace and sends each
//! frame [`Schedule::rounds`] times. It never fails: an announcement is an optimisation, so
//! whatever goes wrong is logged and reported in [`Announced`], and the caller carries on. Used by
//! the `sriov` CNI right after ADD configured the VF, and usable by the agent whenever it puts an
//! address back (the future is `Send`, so it can be spawned on a multi-threaded runtime).
//!
//! Cost: the frames take microseconds, but the kernel makes the close of a packet socket wait for
//! an RCU grace period (10-25 ms measured on the test VM). A helper thread does the close, so no
//! runtime thread stalls; a process that exits right away (the CNI) still waits for it before its
//! exit is reported. A long-lived caller pays nothing on anyone's critical path.

mod carrier;
pub mod frame;
mod socket;

use std::net::IpAddr;
use std::time::Duration;

use crate::mac::MacAddr;
use crate::netns::NetnsHandle;

/// When the frames go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How many times each frame is sent; the first round right when the link can transmit.
    /// Repeats cover a frame lost while the VF's port is still coming up.
    pub rounds: u32,
    /// Time between two rounds.
    pub interval: Duration,
    /// How long to wait for carrier before the first round. When it runs out the frames are
    /// sent anyway (a VF whose carrier flag lags its link still delivers them) and it is logged.
    pub carrier_wait: Duration,
}

impl Schedule {
    /// The CNI's: three rounds 1 ms apart, after at most 200 ms for carrier. The rounds are over
    /// before the agent has recorded the attachment (the CNI runs both at once), so they add
    /// nothing to ADD by themselves; the copies cover one frame lost while the VF's port comes
    /// up. Announcing again on a slower clock (a peer or a switch that missed all three) needs a
    /// process that outlives ADD: the agent's job.
    pub const CNI: Schedule = Schedule {
        rounds: 3,
        interval: Duration::from_millis(1),
        carrier_wait: Duration::from_millis(200),
    };
    /// The agent's, after it records an attachment or puts a fenced address back: off ADD's
    /// critical path, so it can wait longer for carrier and spread its rounds (a peer or switch
    /// port that missed the first frame gets two more chances within half a second).
    pub const AGENT: Schedule = Schedule {
        rounds: 3,
        interval: Duration::from_millis(200),
        carrier_wait: Duration::from_secs(2),
    };
}

/// What [`announce`] did. Failures were logged as they happened; this is for callers that count
/// them (metrics, tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Announced {
    /// The link could transmit before the first round (else the wait ran out or failed).
    pub carrier: bool,
    /// Frames the kernel accepted.
    pub sent: u32,
    /// Frames that were not sent (socket, link or send errors).
    pub failed: u32,
}

/// Announces `addrs` as living at `mac` on `ifname` in `ns`: per [`Schedule`], a gratuitous ARP
/// request for each IPv4 address and an unsolicited NA (Override set) for each IPv6 one, from a
/// packet socket opened inside `ns`. Addresses nobody can be told about (unspecified, loopback,
/// multicast) are skipped. Returns once the last round is out; never fails (see the module doc).
/// Must run inside a tokio runtime, on a thread in the caller's own namespace.
pub async fn announce(
    ns: &NetnsHandle,
    ifname: &str,
    mac: MacAddr,
    addrs: &[IpAddr],
    schedule: &Schedule,
) -> Announced {
    let mut frames: Vec<(IpAddr, Vec<u8>)> = Vec::new();
    for &ip in addrs {
        if !frames.iter().any(|(seen, _)| *seen == ip)
            && let Some(f) = frame::announcement(mac, ip)
        {
            frames.push((ip, f));
        }
    }
    let total = u32::try_from(frames.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(schedule.rounds);
    let mut done = Announced::default();
    if total == 0 {
        return done;
    }
    let netns = ns.path().display();
    let gave_up = |done: Announced| Announced {
        failed: total - done.sent,
        ..done
    };
    // The socket first: opening it costs a thread spawn that should not sit between carrier and
    // the first frame.
    let sock = match socket::PacketSocket::open_in(ns) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%netns, ifname, %error, "neighbour announcement: no packet socket");
            return gave_up(done);
        }
    };
    let index = match carrier::wait_for_carrier(ns, ifname, schedule.carrier_wait).await {
        Ok((index, carrier)) => {
            done.carrier = carrier;
            if !carrier {
                tracing::warn!(
                    %netns,
                    ifname,
                    waited_ms = schedule.carrier_wait.as_millis(),
                    "neighbour announcement: no carrier yet, announcing anyway"
                );
            }
            index
        }
        Err(error) => {
            tracing::warn!(%netns, ifname, %error, "neighbour announcement: link not readable");
            return gave_up(done);
        }
    };
    for round in 0..schedule.rounds {
        if round > 0 {
            tokio::time::sleep(schedule.interval).await;
        }
        for (ip, f) in &frames {
            match sock.send(index, f) {
                Ok(()) => done.sent += 1,
                Err(errno) => {
                    done.failed += 1;
                    tracing::warn!(%netns, ifname, %ip, round, %errno, "neighbour announcement not sent");
                }
            }
        }
    }
    tracing::debug!(%netns, ifname, %mac, sent = done.sent, failed = done.failed, "neighbours told");
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent spawns announcements on its multi-threaded runtime: the future must be `Send`.
    #[test]
    fn the_announcement_future_is_send() {
        fn send<T: Send>(_: &T) {}
        let ns = NetnsHandle::current().unwrap();
        let fut = announce(&ns, "lo", MacAddr::default(), &[], &Schedule::CNI);
        send(&fut);
    }
}
