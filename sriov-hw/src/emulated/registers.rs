//! The emulated VFs' "registers": the configuration set through the PF (MAC, VLAN, rates,
//! spoofchk, trust, link state), one JSON file per VF in the PF's directory
//! (`sriov_emu_vf/<i>.json`), written atomically. They outlive every process (the CNI runs once
//! per call) and are what [`super::Emulated::vf_states`] reports, like a real PF driver's
//! VF table. A VF without a file has the power-on defaults ([`default_state`]).
//!
//! Read-modify-apply sequences hold [`lock`], so concurrent CNI calls never apply a register
//! change on top of a stale view (a few netlink requests: the lock is held for about a
//! millisecond).

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::EmulateError;
use super::tree::write_atomic;
use crate::mac::MacAddr;
use crate::vf::{VfLinkState, VfState, VfVlan};

/// Directory of the register files inside the PF's directory.
pub const REGISTERS_DIR: &str = "sriov_emu_vf";

/// Lock file inside the PF's directory.
const LOCK_FILE: &str = "sriov_emu.lock";

/// A VF's configuration after SR-IOV is enabled: no admin MAC (reported as all-zero, as real PFs
/// do), VLAN 0, no rate limits, spoof check on, trust off, link state auto.
pub fn default_state(index: u32) -> VfState {
    VfState {
        index,
        mac: Some(MacAddr::default()),
        vlan: VfVlan::default(),
        min_tx_rate: 0,
        max_tx_rate: 0,
        spoofchk: Some(true),
        trust: Some(false),
        link_state: Some(VfLinkState::Auto),
    }
}

fn path(pf_dir: &Path, index: u32) -> PathBuf {
    pf_dir.join(REGISTERS_DIR).join(format!("{index}.json"))
}

/// Reads VF `index`'s registers (defaults if never written).
pub fn read(pf_dir: &Path, index: u32) -> Result<VfState, EmulateError> {
    let p = path(pf_dir, index);
    match fs::read(&p) {
        Ok(bytes) => {
            let mut s: VfState =
                serde_json::from_slice(&bytes).map_err(|e| EmulateError::Corrupt {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
            s.index = index;
            Ok(s)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(default_state(index)),
        Err(e) => Err(EmulateError::io("read", p, e)),
    }
}

/// Reads the registers of VFs `0..count`.
pub fn read_all(pf_dir: &Path, count: u32) -> Result<Vec<VfState>, EmulateError> {
    (0..count).map(|i| read(pf_dir, i)).collect()
}

/// Stores VF `state.index`'s registers atomically.
pub fn write(pf_dir: &Path, state: &VfState) -> Result<(), EmulateError> {
    let p = path(pf_dir, state.index);
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| EmulateError::Corrupt {
        path: p.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&p, &bytes)
}

/// Forgets VF `index`'s registers (the VF no longer exists).
pub fn remove(pf_dir: &Path, index: u32) -> Result<(), EmulateError> {
    let p = path(pf_dir, index);
    match fs::remove_file(&p) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(EmulateError::io("remove", p, e)),
        _ => Ok(()),
    }
}

/// An exclusive lock on the PF's registers, released on drop.
pub struct RegistersLock {
    _lock: Flock<File>,
}

/// Takes the PF's register lock (blocking; held for a read-modify-apply of a few milliseconds).
pub fn lock(pf_dir: &Path) -> Result<RegistersLock, EmulateError> {
    let p = pf_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| EmulateError::io("open", &p, e))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| EmulateError::io("lock", &p, errno.into()))?;
    Ok(RegistersLock { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join(REGISTERS_DIR)).unwrap();
        assert_eq!(read(tmp.path(), 3).unwrap(), default_state(3));
        let mut s = default_state(3);
        s.mac = Some("02:00:00:00:00:07".parse().unwrap());
        s.vlan = VfVlan {
            vlan: 100,
            qos: 3,
            proto: crate::vf::VlanProto::Dot1Ad,
        };
        s.max_tx_rate = 100;
        s.link_state = Some(VfLinkState::Disable);
        let _guard = lock(tmp.path()).unwrap();
        write(tmp.path(), &s).unwrap();
        assert_eq!(read(tmp.path(), 3).unwrap(), s);
        assert_eq!(read_all(tmp.path(), 4).unwrap()[3], s);
        remove(tmp.path(), 3).unwrap();
        remove(tmp.path(), 3).unwrap();
        assert_eq!(read(tmp.path(), 3).unwrap(), default_state(3));
    }
}
