//! What [`super::apply`] and [`super::restore`] need from the node, as traits, so their order of
//! steps and their rollback are unit-tested against a recorder and run against the kernel through
//! [`NodeMachine`].

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;

use super::model::{Original, Step, VfTarget};
use crate::cidr::IpCidr;
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::netns::NetnsHandle;
use crate::vf::{VfControl, VfError, VfNetdevs};
use crate::vfctl::Backend;

/// Link operations in one namespace (implemented by [`Netlink`]).
pub trait LinkOps {
    /// Looks a link up by name; `Ok(None)` when this namespace has none by that name.
    fn link_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LinkInfo>, NetlinkError>>;
    /// Brings `link` administratively up.
    fn set_up(&self, link: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Brings `link` administratively down (needed before a rename or a move on most drivers).
    fn set_down(&self, link: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Renames `link` to `new` (the link must be down).
    fn set_name(&self, link: &str, new: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Sets the netdev's own hardware address (not the PF-side admin MAC).
    fn set_mac(&self, link: &str, mac: MacAddr) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Sets the MTU in bytes (L3 payload).
    fn set_mtu(&self, link: &str, mtu: u32) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Moves `link` into `ns`, renamed to `new` in the same request so it never shows up there
    /// under its host name.
    fn move_to_netns(
        &self,
        link: &str,
        ns: &NetnsHandle,
        new: &str,
    ) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Adds address `a` (with prefix length) to `link`; `EEXIST` if it is already there.
    fn add_address(&self, link: &str, a: IpCidr) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Removes every address from `link`; used on DEL so the VF goes back to the host unnumbered.
    fn flush_addresses(&self, link: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    /// Adds a route to `dst` out of `link`: via `gw`, or on-link when `gw` is `None`.
    fn add_route(
        &self,
        link: &str,
        dst: IpCidr,
        gw: Option<IpAddr>,
    ) -> impl Future<Output = Result<(), NetlinkError>>;
}

impl LinkOps for Netlink {
    async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        Netlink::link_by_name(self, name).await
    }
    async fn set_up(&self, link: &str) -> Result<(), NetlinkError> {
        Netlink::set_up(self, link).await
    }
    async fn set_down(&self, link: &str) -> Result<(), NetlinkError> {
        Netlink::set_down(self, link).await
    }
    async fn set_name(&self, link: &str, new: &str) -> Result<(), NetlinkError> {
        Netlink::set_name(self, link, new).await
    }
    async fn set_mac(&self, link: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        Netlink::set_mac(self, link, mac).await
    }
    async fn set_mtu(&self, link: &str, mtu: u32) -> Result<(), NetlinkError> {
        Netlink::set_mtu(self, link, mtu).await
    }
    async fn move_to_netns(
        &self,
        link: &str,
        ns: &NetnsHandle,
        new: &str,
    ) -> Result<(), NetlinkError> {
        Netlink::move_to_netns(self, link, ns, new).await
    }
    async fn add_address(&self, link: &str, a: IpCidr) -> Result<(), NetlinkError> {
        Netlink::add_address(self, link, a).await
    }
    async fn flush_addresses(&self, link: &str) -> Result<(), NetlinkError> {
        Netlink::flush_addresses(self, link).await
    }
    async fn add_route(
        &self,
        link: &str,
        dst: IpCidr,
        gw: Option<IpAddr>,
    ) -> Result<(), NetlinkError> {
        Netlink::add_route(self, link, dst, gw).await
    }
}

/// The node as attach/restore see it: host links, VF control, entering a pod namespace, and
/// finding or recovering a VF's netdev.
pub trait Machine {
    /// Link operations in the host namespace (and, through [`Machine::enter`], in pods).
    type Links: LinkOps;
    /// The PF-side VF control of this node's NIC driver.
    type Vfs: VfControl;
    /// Link operations in the host namespace.
    fn host(&self) -> &Self::Links;
    /// VF configuration through the PF (VLAN, rate, MAC, trust…).
    fn vfs(&self) -> &Self::Vfs;
    /// The host namespace (target of moves back out of a pod).
    fn host_ns(&self) -> &NetnsHandle;
    /// Link operations inside `ns`.
    fn enter(&self, ns: &NetnsHandle) -> Result<Self::Links, NetlinkError>;
    /// The VF's netdev name if it is in the host namespace (under any name).
    fn find_in_host(&self, t: &VfTarget, orig: &Original) -> impl Future<Output = Option<String>>;
    /// The name, in the pod namespace `inside` is bound to, of the link that is provably this
    /// VF: by an identity the pod cannot change (not its name or MAC, which a pod may share with
    /// its own interfaces). `Ok(None)` when no link there can be proven to be the VF; the caller
    /// then moves nothing.
    fn find_in_pod(
        &self,
        inside: &Self::Links,
        t: &VfTarget,
        orig: &Original,
    ) -> impl Future<Output = Result<Option<String>, NetlinkError>>;
    /// Gets the VF netdev back when its namespace is gone: waits for a real VF to reappear, or
    /// re-creates an emulated one. `Ok(None)` if it did not come back.
    fn recover(
        &self,
        t: &VfTarget,
        orig: &Original,
    ) -> impl Future<Output = Result<Option<String>, VfError>>;
    /// Called before each step of ADD. Real nodes do nothing; with the `fault-injection` feature,
    /// [`NodeMachine`] kills the process at the step named by `SRIOV_FAULT_STEP` and stops it
    /// (SIGSTOP) at the one named by `SRIOV_PAUSE_STEP`.
    fn checkpoint(&self, _step: Step) {}
}

/// The real node: netlink in the host namespace and the VF backend of the PF's driver, which
/// also knows where that NIC's VF netdevs are.
pub struct NodeMachine {
    host: Netlink,
    host_ns: NetnsHandle,
    vfs: Backend,
}

/// How long a VF may take to reappear in the host after its namespace was deleted (a real VF
/// coming back; an emulated one's veth being destroyed with the namespace, so it can be re-created).
/// The kernel tears namespaces down in a worker that a busy node delays by seconds; only the
/// reclaim and DEL of a pod whose namespace is already gone ever wait this long.
const REAPPEAR_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl NodeMachine {
    /// Builds the machine for a PF bound to `pf_driver`, with sysfs at `sysfs_root`. Must run inside
    /// a tokio runtime, on the thread whose namespace is the host's.
    pub fn new(pf_driver: &str, sysfs_root: &Path) -> Result<Self, NetlinkError> {
        let host = Netlink::host()?;
        let host_ns = NetnsHandle::current().map_err(|e| NetlinkError::Io {
            op: "open host netns",
            message: e.to_string(),
        })?;
        Ok(NodeMachine {
            vfs: Backend::for_driver(pf_driver, host.clone(), sysfs_root),
            host,
            host_ns,
        })
    }

    /// The VF backend (for reading the original configuration).
    pub fn backend(&self) -> &Backend {
        &self.vfs
    }

    /// The host netlink connection.
    pub fn netlink(&self) -> &Netlink {
        &self.host
    }
}

impl Machine for NodeMachine {
    type Links = Netlink;
    type Vfs = Backend;

    fn host(&self) -> &Netlink {
        &self.host
    }
    fn vfs(&self) -> &Backend {
        &self.vfs
    }
    fn host_ns(&self) -> &NetnsHandle {
        &self.host_ns
    }
    fn enter(&self, ns: &NetnsHandle) -> Result<Netlink, NetlinkError> {
        Netlink::in_netns(ns)
    }

    #[cfg(feature = "fault-injection")]
    fn checkpoint(&self, step: Step) {
        use nix::sys::signal::{Signal, raise};
        let at = |var: &str| std::env::var(var).is_ok_and(|s| s == step.to_string());
        // SIGKILL: a CNI killed mid-ADD (a runtime's timeout). SIGSTOP: one paused there, so a
        // test can act while it is between Plan and Commit, then let it go on (SIGCONT).
        if at("SRIOV_FAULT_STEP") {
            let _ = raise(Signal::SIGKILL);
        }
        if at("SRIOV_PAUSE_STEP") {
            let _ = raise(Signal::SIGSTOP);
        }
    }

    /// As the backend finds it; a failed lookup counts as "not there".
    async fn find_in_host(&self, t: &VfTarget, _orig: &Original) -> Option<String> {
        match self.vfs.host_netdev(&t.pf, t.index, t.pci).await {
            Ok(link) => link.map(|l| l.name),
            Err(_) => None,
        }
    }

    async fn find_in_pod(
        &self,
        inside: &Netlink,
        t: &VfTarget,
        _orig: &Original,
    ) -> Result<Option<String>, NetlinkError> {
        self.vfs.netdev_in(inside, &t.pf, t.index, t.pci).await
    }

    /// Revives the VF (a no-op for a real one) and looks for it in the host until
    /// [`REAPPEAR_WAIT`] has passed: the kernel tears a deleted namespace down asynchronously,
    /// so a real VF reappears late, and an emulated VF's veth pair (so its representor) still
    /// exists until then, which makes reviving it a no-op. Retry both.
    async fn recover(&self, t: &VfTarget, orig: &Original) -> Result<Option<String>, VfError> {
        let deadline = std::time::Instant::now() + REAPPEAR_WAIT;
        loop {
            self.vfs.revive(&t.pf, t.index).await?;
            if let Some(n) = self.find_in_host(t, orig).await {
                return Ok(Some(n));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
