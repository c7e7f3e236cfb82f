//! `arp_probe IFACE OUR_MAC OUR_IP TARGET_IP INTERVAL_MS SECONDS`: asks "who has TARGET_IP" on
//! IFACE every INTERVAL_MS for SECONDS and prints every reply as `<ms since start> <request
//! number> <sender MAC>`, one per line, so a test sees every MAC that ever answered for an IP
//! and whether two answered the same request. Run it in the namespace of IFACE
//! (`ip netns exec`). Exits 2 on bad arguments, 1 on socket errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed expectation fails the test

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("arp_probe: {e}");
        std::process::exit(if e.starts_with("usage") { 2 } else { 1 });
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

fn run() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        || "usage: arp_probe IFACE OUR_MAC OUR_IP TARGET_IP INTERVAL_MS SECONDS".to_string();
    if a.len() != 6 {
        return Err(usage());
    }
    let mac = parse_mac(&a[1]).ok_or_else(usage)?;
    let ours: Ipv4Addr = a[2].parse().map_err(|_| usage())?;
    let target: Ipv4Addr = a[3].parse().map_err(|_| usage())?;
    let interval = Duration::from_millis(a[4].parse().map_err(|_| usage())?);
    let total = Duration::from_secs(a[5].parse().map_err(|_| usage())?);
    let ifname = std::ffi::CString::new(a[0].as_str()).map_err(|_| usage())?;
    // SAFETY: a valid NUL-terminated name; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
    if index == 0 {
        return Err(format!("no interface {}", a[0]));
    }
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto as i32) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = proto;
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let mut req = Vec::with_capacity(28);
    req.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&mac);
    req.extend_from_slice(&ours.octets());
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&target.octets());
    let start = Instant::now();
    let mut seq = 0u64;
    let mut next = start;
    while start.elapsed() < total {
        if Instant::now() >= next {
            seq += 1;
            // SAFETY: `req` and `to` outlive the call; lengths are theirs.
            unsafe {
                libc::sendto(
                    fd,
                    req.as_ptr().cast(),
                    req.len(),
                    0,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            next += interval;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = next.saturating_duration_since(Instant::now()).as_millis() as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, wait.max(1)) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 128];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 28 {
            continue;
        }
        let p = &buf[..n as usize];
        // An ARP reply (op 2) whose sender protocol address is the target.
        if p[6..8] == [0, 2] && p[14..18] == target.octets() {
            let m = &p[8..14];
            println!(
                "{} {seq} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                start.elapsed().as_millis(),
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5]
            );
        }
    }
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(fd) };
    Ok(())
}
