//! The node's ledger: which attachment (container ID + ifname) holds which VF and which IPs, the
//! VF's original configuration, and the CNI result. Stored in sled; the agent is the only process
//! that opens it. Every change is one transaction across the three trees and is flushed to disk
//! before the caller acknowledges it, so a crash at any point leaves a consistent ledger.

mod keys;

use std::path::Path;

use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sriov_proto::node::{Attachment, AttachmentKey, State};

pub use keys::{att_key, ip_key};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("ledger record for {0} is corrupt: {1}")]
    Corrupt(String, prost::DecodeError),
    #[error("attachment {key} already exists ({state}); the runtime must DEL it first")]
    Exists { key: String, state: String },
    #[error("VF {pci} is held by attachment {holder}")]
    VfBusy { pci: String, holder: String },
    #[error("IP {ip} of network {network:?} is held by attachment {holder}")]
    IpBusy {
        network: String,
        ip: String,
        holder: String,
    },
    #[error("no attachment {0}")]
    NotFound(String),
}

/// Failures raised inside a transaction (aborting it).
enum Abort {
    Exists(String, String),
    VfBusy(String, String),
    IpBusy(String, String),
    NotFound(String),
    Corrupt(String, prost::DecodeError),
}

fn abort<T>(a: Abort) -> Result<T, ConflictableTransactionError<Abort>> {
    Err(ConflictableTransactionError::Abort(a))
}

/// Handle on the open ledger.
#[derive(Clone)]
pub struct Ledger {
    db: sled::Db,
    att: sled::Tree,
    vf: sled::Tree,
    ip: sled::Tree,
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
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            .open()?;
        Ok(Ledger {
            att: db.open_tree("attachments")?,
            vf: db.open_tree("vf_owner")?,
            ip: db.open_tree("ip_owner")?,
            db,
        })
    }

    /// Records a new attachment in state PLANNED, reserving its VF and `reserved_ips` for its
    /// network. Fails without changing anything if the key exists or a resource is held.
    pub fn plan(&self, a: &Attachment) -> Result<(), LedgerError> {
        let key = a.key.clone().unwrap_or_default();
        let k = att_key(&key);
        let shown = display_key(&key);
        let bytes = a.encode_to_vec();
        let res = (&self.att, &self.vf, &self.ip).transaction(|(att, vf, ip)| {
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
        self.finish(res, &a.network)?;
        Ok(())
    }

    /// Marks an attachment COMMITTED with its result; returns the stored record.
    pub fn commit(
        &self,
        key: &AttachmentKey,
        result_json: &str,
    ) -> Result<Attachment, LedgerError> {
        let k = att_key(key);
        let shown = display_key(key);
        let res = self.att.transaction(|att| {
            let Some(old) = att.get(&k)? else {
                return abort(Abort::NotFound(shown.clone()));
            };
            let mut rec = match Attachment::decode(&old[..]) {
                Ok(r) => r,
                Err(e) => return abort(Abort::Corrupt(shown.clone(), e)),
            };
            rec.set_state(State::Committed);
            rec.result_json = result_json.to_string();
            att.insert(&k[..], rec.encode_to_vec())?;
            Ok(rec)
        });
        self.finish(res, "")
    }

    /// Removes an attachment and frees its VF and IPs; `None` if it was not there (idempotent,
    /// for DEL repeated by the runtime).
    pub fn remove(&self, key: &AttachmentKey) -> Result<Option<Attachment>, LedgerError> {
        let k = att_key(key);
        let shown = display_key(key);
        let res = (&self.att, &self.vf, &self.ip).transaction(|(att, vf, ip)| {
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
        self.finish(res, "")
    }

    /// The record of one attachment.
    pub fn get(&self, key: &AttachmentKey) -> Result<Option<Attachment>, LedgerError> {
        match self.att.get(att_key(key))? {
            None => Ok(None),
            Some(b) => decode(&display_key(key), &b).map(Some),
        }
    }

    /// Every attachment (for status, GC and the reconciler).
    pub fn list(&self) -> Result<Vec<Attachment>, LedgerError> {
        self.att
            .iter()
            .map(|r| {
                let (k, v) = r?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    /// Which attachment holds VF `pci`.
    pub fn vf_holder(&self, pci: &str) -> Result<Option<AttachmentKey>, LedgerError> {
        Ok(self
            .vf
            .get(pci.as_bytes())?
            .map(|k| keys::parse_att_key(&k)))
    }

    /// Which attachment holds `ip` (address or CIDR) in `network`.
    pub fn ip_holder(&self, network: &str, ip: &str) -> Result<Option<AttachmentKey>, LedgerError> {
        Ok(self
            .ip
            .get(ip_key(network, ip))?
            .map(|k| keys::parse_att_key(&k)))
    }

    /// Bytes the store occupies on disk (the churn soak checks it stays bounded).
    pub fn size_on_disk(&self) -> Result<u64, LedgerError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Flushes after a successful transaction and maps aborts to errors.
    fn finish<T>(
        &self,
        res: Result<T, TransactionError<Abort>>,
        network: &str,
    ) -> Result<T, LedgerError> {
        match res {
            Ok(v) => {
                self.db.flush()?;
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
                Abort::NotFound(k) => LedgerError::NotFound(k),
                Abort::Corrupt(k, e) => LedgerError::Corrupt(k, e),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
