//! The VF model and the interface every VF-control backend implements.
//!
//! [`model`] is a leaf (it imports nothing of this crate but [`crate::mac`]): what a VF's
//! configuration through its PF is. The rest is the contract a backend fulfils: [`VfControl`]
//! sets that configuration, [`VfNetdevs`] finds the VF's netdev. The backends themselves live
//! with what they drive ([`crate::vfctl::PfNetlink`] for real PF drivers,
//! [`crate::emulated::Emulated`] for the emulated NIC), and [`crate::vfctl`] picks one per PF
//! driver, so neither backend imports the other nor the selection.

mod control;
mod error;
pub mod model;

pub use control::{VfControl, VfNetdevs, configure_each};
pub use error::{VfError, VfErrorKind};
pub use model::{VfAttr, VfChange, VfLinkState, VfState, VfVlan, VlanProto};
