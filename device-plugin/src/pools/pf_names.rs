//! `pfNames` entries: `ens1f0` or `ens1f0#0-3,5` (only the listed VF indexes of that PF).

use std::ops::RangeInclusive;

/// A parsed `pfNames` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfNameSel {
    pub pf: String,
    /// `None` = every VF of the PF.
    pub vfs: Option<Vec<RangeInclusive<u32>>>,
}

impl PfNameSel {
    /// Parses `name[#ranges]`; ranges are comma-separated `n` or `a-b` with a ≤ b.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (pf, ranges) = match s.split_once('#') {
            None => (s, None),
            Some((pf, r)) => (pf, Some(r)),
        };
        if pf.is_empty() || pf.len() > 15 || pf.contains(['/', ' ', '#']) {
            return Err(format!(
                "pfNames entry {s:?}: invalid interface name {pf:?}"
            ));
        }
        let vfs = ranges
            .map(|r| {
                r.split(',')
                    .map(|part| {
                        parse_range(part)
                            .ok_or_else(|| format!("pfNames entry {s:?}: bad VF range {part:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(PfNameSel {
            pf: pf.to_string(),
            vfs,
        })
    }

    /// Whether VF `index` of PF netdev `pf` is selected.
    pub fn matches(&self, pf: &str, index: u32) -> bool {
        self.pf == pf
            && self
                .vfs
                .as_ref()
                .is_none_or(|rs| rs.iter().any(|r| r.contains(&index)))
    }
}

fn parse_range(part: &str) -> Option<RangeInclusive<u32>> {
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    match part.split_once('-') {
        None => num(part).map(|n| n..=n),
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(a..=b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        let s = PfNameSel::parse("ens1f0#0-3,5").unwrap();
        assert_eq!(s.pf, "ens1f0");
        assert!((0..=3).all(|i| s.matches("ens1f0", i)));
        assert!(!s.matches("ens1f0", 4));
        assert!(s.matches("ens1f0", 5));
        assert!(!s.matches("ens1f1", 0));
        assert!(PfNameSel::parse("ens1f0").unwrap().matches("ens1f0", 99));
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in [
            "",
            "#0",
            "ens1f0#",
            "ens1f0#3-1",
            "ens1f0#a",
            "ens1f0#1,,2",
            "ens1f0#-1",
            "a/b",
        ] {
            assert!(PfNameSel::parse(bad).is_err(), "{bad:?}");
        }
    }
}
