//! The socket announcements leave through: `AF_PACKET`/`SOCK_RAW`, created inside the pod's
//! namespace, send-only. A packet socket bypasses the IP stack, so an IPv6 address that is still
//! tentative (under duplicate address detection) can be announced at once, and nothing the
//! kernel's neighbour code does is involved.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike, sendto, socket,
};

use crate::netns::{NetnsError, NetnsHandle};

/// A raw packet socket in one namespace. Protocol 0: it receives nothing, so no frame of the
/// pod's traffic is ever queued to it.
pub(super) struct PacketSocket {
    /// Always `Some` until dropped.
    fd: Option<OwnedFd>,
}

impl Drop for PacketSocket {
    /// Closing a packet socket waits for an RCU grace period (`packet_release` calls
    /// `synchronize_net`; 10-25 ms measured on the test VM), so a short-lived helper thread does
    /// the close and the caller, often a runtime thread, does not stall. (A process that exits
    /// right after still waits for it: the kernel closes what is open before the exit is
    /// reported.) If no thread can be spawned, the close happens here.
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let _ = std::thread::Builder::new()
                .name("close-pkt-sock".into())
                .spawn(move || drop(fd));
        }
    }
}

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum SocketError {
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// `socket(AF_PACKET, SOCK_RAW)` failed (EPERM without CAP_NET_RAW in the namespace's owner).
    #[error("open AF_PACKET socket: {0}")]
    Open(Errno),
}

impl PacketSocket {
    /// Opens the socket on a short-lived thread inside `ns`; it stays bound to `ns` afterwards,
    /// and interface indexes given to [`PacketSocket::send`] are `ns`'s. Non-blocking: a full
    /// device queue is a failed send (`EAGAIN`), never a stalled ADD.
    pub(super) fn open_in(ns: &NetnsHandle) -> Result<Self, SocketError> {
        let fd = ns.run_in(|| {
            socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
        })?;
        Ok(PacketSocket {
            fd: Some(fd.map_err(SocketError::Open)?),
        })
    }

    /// Sends one complete Ethernet frame (header included) out of interface `ifindex`.
    pub(super) fn send(&self, ifindex: u32, frame: &[u8]) -> Result<(), Errno> {
        let fd = self.fd.as_ref().ok_or(Errno::EBADF)?;
        let addr = link_addr(ifindex, frame).ok_or(Errno::EINVAL)?;
        let n = sendto(fd.as_raw_fd(), frame, &addr, MsgFlags::empty())?;
        if n == frame.len() {
            Ok(())
        } else {
            Err(Errno::EMSGSIZE)
        }
    }
}

/// The `sockaddr_ll` naming `ifindex` and the frame's own EtherType and destination (for a
/// `SOCK_RAW` socket only the index and protocol matter; the header is in the frame). `None`
/// for a frame too short to carry an Ethernet header or an index the kernel cannot name.
fn link_addr(ifindex: u32, frame: &[u8]) -> Option<LinkAddr> {
    let dst: [u8; 6] = frame.get(0..6)?.try_into().ok()?;
    let ethertype: [u8; 2] = frame.get(12..14)?.try_into().ok()?;
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&dst);
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        // Network byte order, as the kernel compares it with the frame's EtherType.
        sll_protocol: u16::from_ne_bytes(ethertype),
        sll_ifindex: i32::try_from(ifindex).ok()?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>()).ok()?;
    // SAFETY: nix has no safe constructor for `LinkAddr`. The pointer is to `sll`, a fully
    // initialised `sockaddr_ll` that lives until this call returns, and `len` is its exact size;
    // `from_raw` checks the length and family and copies the struct out (no reference kept).
    unsafe { LinkAddr::from_raw((&raw const sll).cast::<libc::sockaddr>(), Some(len)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::frame;

    #[test]
    fn link_address_names_the_interface_and_the_frames_ethertype() {
        let mac = crate::mac::MacAddr([2, 0, 0, 0, 0, 1]);
        let f = frame::unsolicited_na(mac, "fd00::1".parse().unwrap());
        let a = link_addr(7, &f).unwrap();
        assert_eq!(a.ifindex(), 7);
        assert_eq!(u16::from_be(a.protocol()), frame::ETH_P_IPV6);
        assert_eq!(a.addr(), Some([0x33, 0x33, 0, 0, 0, 1]));
        let g = frame::gratuitous_arp(mac, "10.0.0.1".parse().unwrap());
        assert_eq!(u16::from_be(link_addr(7, &g).unwrap().protocol()), 0x0806);
        assert!(link_addr(7, &f[..10]).is_none());
        assert!(link_addr(u32::MAX, &f).is_none());
    }
}
