//! The `sriov-device-plugin` node agent as a library: the binary in `main.rs` only parses the
//! command line and calls [`cli::dispatch`].

pub mod agent;
pub mod cli;
pub mod cluster;
pub mod health;
pub mod kubelet;
pub mod ledger;
pub mod metrics;
pub mod podresources;
pub mod podtable;
pub mod pools;
