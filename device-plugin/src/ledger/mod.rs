//! The node's ledger: which attachment (container ID + ifname) holds which VF and which IPs, the
//! VF's original configuration, and the CNI result. Stored in sled; the agent is the only process
//! that opens it. Every change is atomic (one transaction across the three trees, or a single-key
//! compare-and-swap where only the attachment record changes) and is flushed to disk before the
//! caller acknowledges it, so a crash at any point leaves a consistent ledger.
//!
//! A write that cannot reach the disk (full, read-only, I/O error) fails the operation with
//! [`LedgerError::Unwritable`], naming the directory and the cause. sled applies a transaction in
//! memory before the flush that failed, and then refuses all further I/O, so the handle is
//! reopened at once: the ledger returns to what is on disk (the failed change is gone, not left
//! as a phantom record holding a VF), and works again as soon as the disk does.

mod keys;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sriov_proto::node::{Attachment, AttachmentKey, State};

pub use keys::{att_key, ip_key};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A storage error not yet attributed to a directory (inside [`Ledger`] only).
    #[error("ledger storage: {0}")]
    Storage(sled::Error),
    /// The ledger's directory cannot be written (or read): nothing was recorded.
    #[error("cannot use the ledger in {dir}: {cause}")]
    Unwritable {
        /// The ledger directory (`--state-dir`).
        dir: String,
        /// The storage error, in words.
        cause: String,
    },
    /// A stored attachment does not decode: the shown key and the decode error.
    #[error("ledger record for {0} is corrupt: {1}")]
    Corrupt(String, prost::DecodeError),
    /// ADD for an attachment (container ID + ifname) that is already recorded.
    #[error("attachment {key} already exists ({state}); the runtime must DEL it first")]
    Exists {
        /// The attachment, as `container/ifname`.
        key: String,
        /// Its recorded state.
        state: String,
    },
    /// The VF is recorded for another attachment.
    #[error("VF {pci} is held by attachment {holder}")]
    VfBusy {
        /// The VF's PCI address.
        pci: String,
        /// The holding attachment, as `container/ifname`.
        holder: String,
    },
    /// The IP is recorded for another attachment on the same network.
    #[error("IP {ip} of network {network:?} is held by attachment {holder}")]
    IpBusy {
        /// The netconf `name` of the network.
        network: String,
        /// The address, normalised, without prefix.
        ip: String,
        /// The holding attachment, as `container/ifname`.
        holder: String,
    },
    /// No attachment with that key (shown as `container/ifname`).
    #[error("no attachment {0}")]
    NotFound(String),
}

impl From<sled::Error> for LedgerError {
    fn from(e: sled::Error) -> Self {
        LedgerError::Storage(e)
    }
}

/// The cause of a storage error in plain words (`No space left on device (os error 28)`).
/// sled hands out copies of the error that stopped its writes with the original's `Debug` text
/// (`Os { code: 28, .. }`) as their message; the OS error code is recovered from it.
fn cause(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => {
            let text = io.to_string();
            let code = io.raw_os_error().or_else(|| {
                let rest = text.split_once("code: ")?.1;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            });
            match code {
                Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
                None => text,
            }
        }
        other => other.to_string(),
    }
}

/// Failures raised inside a transaction (aborting it).
enum Abort {
    Exists(String, String),
    VfBusy(String, String),
    IpBusy(String, String),
    Corrupt(String, prost::DecodeError),
}

fn abort<T>(a: Abort) -> Result<T, ConflictableTransactionError<Abort>> {
    Err(ConflictableTransactionError::Abort(a))
}

/// Handle on the open ledger. Clones share one store.
#[derive(Clone)]
pub struct Ledger {
    dir: PathBuf,
    slot: Arc<RwLock<Slot>>,
}

/// The open store, or none after a failed reopen; `generation` counts opens so concurrent
/// failures of one store reopen it once.
struct Slot {
    generation: u64,
    trees: Option<Trees>,
}

struct Trees {
    db: sled::Db,
    att: sled::Tree,
    vf: sled::Tree,
    ip: sled::Tree,
    dir: PathBuf,
}

/// How long [`Trees::open`] waits for the file lock of a store this process closed. sled's
/// shared I/O threads let go of a closed store's files only when their queued writes are done,
/// which on a loaded disk can take seconds; until then the lock is still held. A lock held by
/// another process (a second agent on the same `--state-dir`) is refused at once.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Stores this process has closed (so a busy lock on them is ours, about to be released).
static CLOSED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn closed_here(dir: &Path) -> bool {
    CLOSED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|d| d == dir)
}

impl Drop for Trees {
    fn drop(&mut self) {
        let mut closed = CLOSED.lock().unwrap_or_else(|e| e.into_inner());
        if !closed.contains(&self.dir) {
            closed.push(self.dir.clone());
        }
    }
}

fn lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

impl Trees {
    fn open(dir: &Path) -> Result<Self, sled::Error> {
        private_dir(dir)?;
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .mode(sled::Mode::LowSpace)
                .open()
            {
                Err(e) if lock_busy(&e) && closed_here(dir) && started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        private_files(dir)?;
        Ok(Trees {
            att: db.open_tree("attachments")?,
            vf: db.open_tree("vf_owner")?,
            ip: db.open_tree("ip_owner")?,
            db,
            dir: dir.to_path_buf(),
        })
    }
}

/// The state directory holds pod names, IPs and MACs: 0700, created so or tightened, whatever
/// the umask.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Every file sled made in the state directory 0600 and every directory 0700 (a ledger from an
/// earlier version, or one opened under a loose umask, is tightened too).
fn private_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let mode = if ty.is_dir() {
            private_files(&entry.path())?;
            0o700
        } else if ty.is_file() {
            0o600
        } else {
            continue;
        };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// A printable `container/ifname` for messages.
pub fn display_key(k: &AttachmentKey) -> String {
    format!("{}/{}", k.container_id, k.ifname)
}

fn decode(key: &str, bytes: &[u8]) -> Result<Attachment, LedgerError> {
    Attachment::decode(bytes).map_err(|e| LedgerError::Corrupt(key.to_string(), e))
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        let trees = Trees::open(dir).map_err(|e| unwritable(dir, &e))?;
        Ok(Ledger {
            dir: dir.to_path_buf(),
            slot: Arc::new(RwLock::new(Slot {
                generation: 0,
                trees: Some(trees),
            })),
        })
    }

    /// Runs `f` on the open store (reopening it first if a previous reopen failed). A storage
    /// error reopens the store, dropping whatever sled kept in memory but could not write, and
    /// is returned as [`LedgerError::Unwritable`].
    fn with<T>(&self, f: impl FnOnce(&Trees) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        let (generation, res) = {
            let mut slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
            if slot.trees.is_none() {
                drop(slot);
                self.reopen(None)?;
                slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
            }
            match slot.trees.as_ref() {
                Some(t) => (slot.generation, f(t)),
                None => return Err(self.reopen(None).err().unwrap_or_else(|| self.gone())),
            }
        };
        match res {
            Err(LedgerError::Storage(e)) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "ledger write failed; reopening it from disk");
                if let Err(again) = self.reopen(Some(generation)) {
                    tracing::error!(dir = %self.dir.display(), error = %again, "ledger reopen failed; retrying on the next call");
                }
                Err(unwritable(&self.dir, &e))
            }
            other => other,
        }
    }

    /// Closes the store and opens it again from disk: when `failed` is the generation that
    /// failed (skipped if another caller already reopened it), or when no store is open.
    fn reopen(&self, failed: Option<u64>) -> Result<(), LedgerError> {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        match failed {
            Some(g) if slot.generation != g => return Ok(()),
            None if slot.trees.is_some() => return Ok(()),
            _ => {}
        }
        // Drop the old handles first: sled holds an exclusive lock on its files until then.
        slot.trees = None;
        slot.generation += 1;
        let trees = Trees::open(&self.dir).map_err(|e| unwritable(&self.dir, &e))?;
        slot.trees = Some(trees);
        tracing::info!(dir = %self.dir.display(), "ledger reopened");
        Ok(())
    }

    fn gone(&self) -> LedgerError {
        LedgerError::Unwritable {
            dir: self.dir.display().to_string(),
            cause: "the store is not open".into(),
        }
    }

    /// Records a new attachment in state PLANNED, reserving its VF and `reserved_ips` for its
    /// network. Fails without changing anything if the key exists or a resource is held.
    pub fn plan(&self, a: &Attachment) -> Result<(), LedgerError> {
        let key = a.key.clone().unwrap_or_default();
        let k = att_key(&key);
        let shown = display_key(&key);
        let bytes = a.encode_to_vec();
        self.with(|t| {
            let res = (&t.att, &t.vf, &t.ip).transaction(|(att, vf, ip)| {
                if let Some(old) = att.get(&k)? {
                    let state = Attachment::decode(&old[..])
                        .map(|o| format!("{:?}", o.state()))
                        .unwrap_or_else(|_| "unreadable".into());
                    return abort(Abort::Exists(shown.clone(), state));
                }
                if let Some(h) = vf.get(a.vf_pci.as_bytes())? {
                    return abort(Abort::VfBusy(
                        a.vf_pci.clone(),
                        String::from_utf8_lossy(&h).into(),
                    ));
                }
                for addr in &a.reserved_ips {
                    if let Some(h) = ip.get(ip_key(&a.network, addr))? {
                        return abort(Abort::IpBusy(
                            addr.clone(),
                            String::from_utf8_lossy(&h).into(),
                        ));
                    }
                }
                att.insert(&k[..], bytes.as_slice())?;
                vf.insert(a.vf_pci.as_bytes(), &k[..])?;
                for addr in &a.reserved_ips {
                    ip.insert(ip_key(&a.network, addr), &k[..])?;
                }
                Ok(())
            });
            finish(t, res, &a.network)
        })
    }

    /// Marks an attachment COMMITTED with its result; returns the stored record.
    ///
    /// One key of one tree changes, so this is a compare-and-swap rather than a transaction: a
    /// sled transaction writes a batch manifest ahead of its entries, and the flush then waits for
    /// two log writes (each `sync_file_range`d) instead of one. The swap is as atomic and, being
    /// flushed before returning, as durable; it only fails if the record changed in between (a
    /// concurrent Abort or reclaim), and is then re-read and retried.
    pub fn commit(
        &self,
        key: &AttachmentKey,
        result_json: &str,
    ) -> Result<Attachment, LedgerError> {
        let k = att_key(key);
        let shown = display_key(key);
        self.with(|t| {
            loop {
                let Some(old) = t.att.get(&k)? else {
                    return Err(LedgerError::NotFound(shown.clone()));
                };
                let mut rec = decode(&shown, &old)?;
                rec.set_state(State::Committed);
                rec.result_json = result_json.to_string();
                let new = rec.encode_to_vec();
                if t.att.compare_and_swap(&k, Some(old), Some(new))?.is_ok() {
                    t.db.flush()?;
                    return Ok(rec);
                }
            }
        })
    }

    /// Rewrites a COMMITTED record with `edit` (a live re-apply's new settings); the VF and IP
    /// reservations are not touched. `None` if the record is gone or not committed.
    pub fn update(
        &self,
        key: &AttachmentKey,
        edit: impl Fn(&mut Attachment),
    ) -> Result<Option<Attachment>, LedgerError> {
        let k = att_key(key);
        let shown = display_key(key);
        self.with(|t| {
            let res = t.att.transaction(|att| {
                let Some(old) = att.get(&k)? else {
                    return Ok(None);
                };
                let mut rec = match Attachment::decode(&old[..]) {
                    Ok(r) => r,
                    Err(e) => return abort(Abort::Corrupt(shown.clone(), e)),
                };
                if rec.state() != State::Committed {
                    return Ok(None);
                }
                edit(&mut rec);
                att.insert(&k[..], rec.encode_to_vec())?;
                Ok(Some(rec))
            });
            finish(t, res, "")
        })
    }

    /// Removes an attachment and frees its VF and IPs; `None` if it was not there (idempotent,
    /// for DEL repeated by the runtime).
    pub fn remove(&self, key: &AttachmentKey) -> Result<Option<Attachment>, LedgerError> {
        let k = att_key(key);
        let shown = display_key(key);
        self.with(|t| {
            let res = (&t.att, &t.vf, &t.ip).transaction(|(att, vf, ip)| {
                let Some(old) = att.remove(&k[..])? else {
                    return Ok(None);
                };
                let rec = match Attachment::decode(&old[..]) {
                    Ok(r) => r,
                    Err(e) => return abort(Abort::Corrupt(shown.clone(), e)),
                };
                // Only free what this attachment owns: never another holder's reservation.
                if vf.get(rec.vf_pci.as_bytes())?.as_deref() == Some(&k[..]) {
                    vf.remove(rec.vf_pci.as_bytes())?;
                }
                for addr in &rec.reserved_ips {
                    let ik = ip_key(&rec.network, addr);
                    if ip.get(&ik)?.as_deref() == Some(&k[..]) {
                        ip.remove(ik)?;
                    }
                }
                Ok(Some(rec))
            });
            finish(t, res, "")
        })
    }

    /// The record of one attachment.
    pub fn get(&self, key: &AttachmentKey) -> Result<Option<Attachment>, LedgerError> {
        self.with(|t| match t.att.get(att_key(key))? {
            None => Ok(None),
            Some(b) => decode(&display_key(key), &b).map(Some),
        })
    }

    /// Every attachment (for status, GC and the reconciler).
    pub fn list(&self) -> Result<Vec<Attachment>, LedgerError> {
        self.with(|t| {
            t.att
                .iter()
                .map(|r| {
                    let (k, v) = r?;
                    decode(&String::from_utf8_lossy(&k), &v)
                })
                .collect()
        })
    }

    /// Which attachment holds VF `pci`.
    pub fn vf_holder(&self, pci: &str) -> Result<Option<AttachmentKey>, LedgerError> {
        self.with(|t| Ok(t.vf.get(pci.as_bytes())?.map(|k| keys::parse_att_key(&k))))
    }

    /// Which attachment holds `ip` (address or CIDR) in `network`.
    pub fn ip_holder(&self, network: &str, ip: &str) -> Result<Option<AttachmentKey>, LedgerError> {
        self.with(|t| {
            Ok(t.ip
                .get(ip_key(network, ip))?
                .map(|k| keys::parse_att_key(&k)))
        })
    }

    /// Bytes the store occupies on disk (the churn soak checks it stays bounded).
    pub fn size_on_disk(&self) -> Result<u64, LedgerError> {
        self.with(|t| Ok(t.db.size_on_disk()?))
    }
}

/// `LedgerError::Unwritable` for a storage error in `dir`.
fn unwritable(dir: &Path, e: &sled::Error) -> LedgerError {
    LedgerError::Unwritable {
        dir: dir.display().to_string(),
        cause: cause(e),
    }
}

/// Flushes after a successful transaction and maps aborts to errors.
fn finish<T>(
    t: &Trees,
    res: Result<T, TransactionError<Abort>>,
    network: &str,
) -> Result<T, LedgerError> {
    match res {
        Ok(v) => {
            t.db.flush()?;
            Ok(v)
        }
        Err(TransactionError::Storage(e)) => Err(e.into()),
        Err(TransactionError::Abort(a)) => Err(match a {
            Abort::Exists(key, state) => LedgerError::Exists { key, state },
            Abort::VfBusy(pci, holder) => LedgerError::VfBusy {
                pci,
                holder: keys::show_raw(&holder),
            },
            Abort::IpBusy(ip, holder) => LedgerError::IpBusy {
                network: network.to_string(),
                ip,
                holder: keys::show_raw(&holder),
            },
            Abort::Corrupt(k, e) => LedgerError::Corrupt(k, e),
        }),
    }
}

#[cfg(test)]
mod tests;
