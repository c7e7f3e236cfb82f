//! What [`super::apply`] and [`super::restore`] need from the node, as traits, so their order of
//! steps and their rollback are unit-tested against a recorder and run against the kernel through
//! [`NodeMachine`].

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::model::{Original, Step, VfTarget};
use crate::cidr::IpCidr;
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::netns::NetnsHandle;
use crate::sysfs::Sysfs;
use crate::vfctl::{Backend, VfControl, VfError};

/// Link operations in one namespace (implemented by [`Netlink`]).
pub trait LinkOps {
    fn link_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LinkInfo>, NetlinkError>>;
    fn set_up(&self, link: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    fn set_down(&self, link: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    fn set_name(&self, link: &str, new: &str) -> impl Future<Output = Result<(), NetlinkError>>;
    fn set_mac(&self, link: &str, mac: MacAddr) -> impl Future<Output = Result<(), NetlinkError>>;
    fn set_mtu(&self, link: &str, mtu: u32) -> impl Future<Output = Result<(), NetlinkError>>;
    fn move_to_netns(
        &self,
        link: &str,
        ns: &NetnsHandle,
        new: &str,
    ) -> impl Future<Output = Result<(), NetlinkError>>;
    fn add_address(&self, link: &str, a: IpCidr) -> impl Future<Output = Result<(), NetlinkError>>;
    fn flush_addresses(&self, link: &str) -> impl Future<Output = Result<(), NetlinkError>>;
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
    type Links: LinkOps;
    type Vfs: VfControl;
    fn host(&self) -> &Self::Links;
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
    /// [`NodeMachine`] kills the process at the step named by `SRIOV_FAULT_STEP`.
    fn checkpoint(&self, _step: Step) {}
}

/// The real node: netlink in the host namespace, the VF backend of the PF's driver, and sysfs.
pub struct NodeMachine {
    host: Netlink,
    host_ns: NetnsHandle,
    vfs: Backend,
    sysfs: Sysfs,
    sysfs_root: PathBuf,
    emulated: bool,
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
            emulated: pf_driver == crate::vfctl::EMULATED_DRIVER,
            host,
            host_ns,
            sysfs: Sysfs::new(sysfs_root),
            sysfs_root: sysfs_root.to_path_buf(),
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

    async fn sysfs_netdev(&self, t: &VfTarget) -> Option<String> {
        let names = crate::discovery::vf_netdevs(&self.sysfs, t.pci).ok()?;
        for n in names {
            if matches!(self.host.link_by_name(&n).await, Ok(Some(_))) {
                return Some(n);
            }
        }
        None
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
        if std::env::var("SRIOV_FAULT_STEP").is_ok_and(|s| s == step.to_string()) {
            // SAFETY: raising SIGKILL on ourselves has no preconditions; it does not return.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    async fn find_in_host(&self, t: &VfTarget, orig: &Original) -> Option<String> {
        if self.emulated {
            // The synthetic tree does not follow renames: the emulated VF is known by its name.
            return match self.host.link_by_name(&orig.netdev).await {
                Ok(Some(_)) => Some(orig.netdev.clone()),
                _ => None,
            };
        }
        self.sysfs_netdev(t).await
    }

    async fn find_in_pod(
        &self,
        inside: &Netlink,
        t: &VfTarget,
        _orig: &Original,
    ) -> Result<Option<String>, NetlinkError> {
        if self.emulated {
            return emulated_vf_in(&self.host, inside, t).await;
        }
        // A real VF's netdev names its PCI function as its parent device, in any namespace.
        let pci = t.pci.to_string();
        Ok(inside
            .list_links()
            .await?
            .into_iter()
            .find(|l| {
                l.parent_bus.as_deref() == Some("pci") && l.parent_dev.as_deref() == Some(&pci)
            })
            .map(|l| l.name))
    }

    async fn recover(&self, t: &VfTarget, orig: &Original) -> Result<Option<String>, VfError> {
        let deadline = std::time::Instant::now() + REAPPEAR_WAIT;
        if self.emulated {
            // The kernel tears a deleted namespace down asynchronously: until it has, the veth
            // pair (and so the representor) still exists and revive_vf is a no-op. Retry.
            loop {
                crate::emulated::revive_vf(&t.pf, t.index, &self.sysfs_root)
                    .await
                    .map_err(|e| {
                        VfError::new(
                            &t.pf,
                            t.index,
                            "re-create emulated VF",
                            crate::vfctl::VfErrorKind::Emulation(e.to_string()),
                        )
                    })?;
                if let Some(n) = self.find_in_host(t, orig).await {
                    return Ok(Some(n));
                }
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        loop {
            if let Some(n) = self.sysfs_netdev(t).await {
                return Ok(Some(n));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The emulated VF `t` in the namespace of `inside`, by its veth pairing with the representor
/// `<pf>r<i>`, which stays in the host: the representor's peer index (IFLA_LINK) names a link
/// in the pod namespace, and that link must be a veth whose own peer is the representor. A pod's
/// own veth (its `eth0`) has another peer, so it never matches, whatever its name or MAC.
async fn emulated_vf_in(
    host: &Netlink,
    inside: &Netlink,
    t: &VfTarget,
) -> Result<Option<String>, NetlinkError> {
    let rep_name = crate::emulated::representor_name(&t.pf, t.index);
    let Some(rep) = host.link_by_name(&rep_name).await? else {
        return Ok(None);
    };
    let Some(peer) = rep.link else {
        return Ok(None);
    };
    Ok(inside
        .link_by_index(peer)
        .await?
        .filter(|l| l.kind.as_deref() == Some("veth") && l.link == Some(rep.index))
        .map(|l| l.name))
}
