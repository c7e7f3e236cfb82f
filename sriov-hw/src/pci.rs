//! PCI addresses in the kernel's `dddd:bb:dd.f` form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A PCI function address (domain, bus, device, function).
///
/// Every VF and PF is keyed by this across the agent, the ledger and the CNI, because netdev names
/// change (pods rename VFs) while the PCI address does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddr {
    /// PCI segment (domain), usually 0; the emulated NIC uses a domain of its own.
    pub domain: u32,
    /// Bus number, 0–255.
    pub bus: u8,
    /// Device (slot) number, 0–31.
    pub device: u8,
    /// Function number, 0–7; VFs often use all eight.
    pub function: u8,
}

/// Why a string is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address {input:?}: {reason}")]
pub struct ParsePciAddrError {
    /// The text that failed to parse, quoted in the message.
    pub input: String,
    /// What is wrong with it (e.g. "bad function").
    pub reason: &'static str,
}

impl PciAddr {
    /// Builds an address, checking the device (0..32) and function (0..8) ranges.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(Self {
            domain,
            bus,
            device,
            function,
        })
    }
}

fn hex_field(s: &str, max_len: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl FromStr for PciAddr {
    type Err = ParsePciAddrError;

    /// Accepts `dddd:bb:dd.f` (domain up to 8 hex digits, as the kernel allows) and the short
    /// `bb:dd.f` form, which means domain 0 (as `lspci` prints it).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParsePciAddrError {
            input: input.to_string(),
            reason,
        };
        let (rest, function) = input
            .rsplit_once('.')
            .ok_or_else(|| err("missing '.function'"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] => (*d, *b, *dev),
            [b, dev] => ("0", *b, *dev),
            _ => return Err(err("expected domain:bus:device.function")),
        };
        let domain = hex_field(domain, 8).ok_or_else(|| err("bad domain"))?;
        let bus = hex_field(bus, 2).ok_or_else(|| err("bad bus"))?;
        let device = hex_field(device, 2).ok_or_else(|| err("bad device"))?;
        let function = hex_field(function, 1).ok_or_else(|| err("bad function"))?;
        PciAddr::new(domain, bus as u8, device as u8, function as u8)
            .ok_or_else(|| err("device must be < 0x20 and function < 8"))
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for PciAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_kernel_form() {
        let a: PciAddr = "0000:3b:02.7".parse().unwrap();
        assert_eq!(a, PciAddr::new(0, 0x3b, 2, 7).unwrap());
        assert_eq!(a.to_string(), "0000:3b:02.7");
        let wide: PciAddr = "10000:00:01.0".parse().unwrap();
        assert_eq!(wide.domain, 0x10000);
        assert_eq!(wide.to_string(), "10000:00:01.0");
    }

    #[test]
    fn short_form_means_domain_zero() {
        let a: PciAddr = "01:10.2".parse().unwrap();
        assert_eq!(a.to_string(), "0000:01:10.2");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "0000:3b:02",
            "0000:3b:02.8",
            "0000:3b:20.0",
            "0000:3g:02.0",
            "x:y:z.w",
            "0000:3b:02.7 ",
            "0000::02.7",
            "0000:3b:02.7.1",
            "123456789:00:00.0",
            "0000:100:00.0",
            "+000:3b:02.7",
            "../../etc",
            "0000:3b:002.7",
        ] {
            assert!(bad.parse::<PciAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn orders_by_domain_bus_device_function() {
        let mut v: Vec<PciAddr> = ["0000:02:00.0", "0000:01:10.2", "0000:01:10.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        assert_eq!(v[0].to_string(), "0000:01:10.0");
    }
}
