//! The traffic-control requests the emulated NIC's rate limit needs, sent as netlink messages
//! instead of running `tc`: a token bucket (tbf) as a device's root qdisc, and an ingress qdisc
//! whose single u32 match-all filter redirects every frame to another device (an ifb), since
//! ingress traffic cannot be shaped where it arrives.

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

use super::{Netlink, NetlinkError};

/// `TCA_TBF_PARMS`: `struct tc_tbf_qopt`.
const TCA_TBF_PARMS: u16 = 1;
/// `TCA_TBF_RATE64`: the rate in bytes/s when it does not fit the 32-bit field.
const TCA_TBF_RATE64: u16 = 4;
/// `TCA_TBF_BURST`: the bucket size in bytes (the kernel derives the bucket time from it).
const TCA_TBF_BURST: u16 = 6;
/// `TC_LINKLAYER_ETHERNET`: with a link layer set, the kernel computes transmit times itself and
/// needs no rate table.
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// Nanoseconds per psched tick (`PSCHED_SHIFT` 6).
const NS_PER_TICK: u64 = 64;

/// A token bucket: `rate` bytes/s, `burst` bytes, and at most `latency_us` of queueing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Sustained rate in bytes per second (> 0).
    pub rate: u64,
    /// Bucket size in bytes (> 0).
    pub burst: u32,
    /// How long a packet may wait for tokens, in microseconds; sets the queue limit.
    pub latency_us: u32,
}

impl TokenBucket {
    /// The queue limit in bytes: what the rate drains in `latency_us`, plus one bucket.
    fn limit(&self) -> u32 {
        let queued = u128::from(self.rate) * u128::from(self.latency_us) / 1_000_000;
        u32::try_from(queued + u128::from(self.burst)).unwrap_or(u32::MAX)
    }

    /// `struct tc_tbf_qopt` in native byte order: rate and peak rate (`struct tc_ratespec`:
    /// cell_log, linklayer, overhead, cell_align, mpu, rate), limit, buffer (ticks), mtu.
    fn qopt(&self) -> Vec<u8> {
        let rate32 = u32::try_from(self.rate).unwrap_or(u32::MAX);
        let buffer_ns = u128::from(self.burst) * 1_000_000_000 / u128::from(self.rate.max(1));
        let buffer = u32::try_from(buffer_ns / u128::from(NS_PER_TICK)).unwrap_or(u32::MAX);
        let mut b = Vec::with_capacity(36);
        b.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&rate32.to_ne_bytes());
        b.extend_from_slice(&[0u8; 12]); // no peak rate
        b.extend_from_slice(&self.limit().to_ne_bytes());
        b.extend_from_slice(&buffer.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // mtu: only with a peak rate
        b
    }

    /// The qdisc's options.
    fn options(&self) -> Vec<TcOption> {
        let nla = |kind, value: Vec<u8>| TcOption::Other(DefaultNla::new(kind, value));
        let mut opts = vec![
            nla(TCA_TBF_PARMS, self.qopt()),
            nla(TCA_TBF_BURST, self.burst.to_ne_bytes().to_vec()),
        ];
        if self.rate > u64::from(u32::MAX) {
            opts.push(nla(TCA_TBF_RATE64, self.rate.to_ne_bytes().to_vec()));
        }
        opts
    }
}

/// A qdisc message for device `dev` under `parent`.
fn qdisc(dev: u32, parent: TcHandle, handle: TcHandle) -> TcMessage {
    // Interface indexes fit in the header's i32 (the kernel's own type).
    let mut msg = TcMessage::with_index(dev as i32);
    msg.header.parent = parent;
    msg.header.handle = handle;
    msg
}

/// The ingress qdisc's handle, `ffff:`.
const INGRESS_HANDLE: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};

/// `u32 match u32 0 0 action mirred egress redirect dev <to>` at priority 1, protocol all.
fn redirect_filter(dev: u32, to: u32) -> TcMessage {
    let mut msg = qdisc(dev, INGRESS_HANDLE, TcHandle::UNSPEC);
    msg.header.info = u32::from(TcHandle {
        major: 1,
        minor: ETH_P_ALL.to_be(),
    });
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.nkeys = 1;
    selector.keys = vec![TcU32Key::default()];
    let mut mirred = TcMirror::default();
    mirred.generic = TcActionGeneric::default();
    mirred.generic.action = TcActionType::Stolen;
    mirred.eaction = TcMirrorActionType::EgressRedir;
    mirred.ifindex = to;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirred,
        ))]),
    ];
    msg.attributes = vec![
        TcAttribute::Kind("u32".to_string()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]),
    ];
    msg
}

impl Netlink {
    /// Makes a token bucket device `dev`'s root qdisc, replacing whatever root qdisc it had
    /// (a tbf already there is changed in place).
    pub async fn set_root_tbf(&self, dev: u32, tb: TokenBucket) -> Result<(), NetlinkError> {
        let mut msg = qdisc(dev, TcHandle::ROOT, TcHandle::UNSPEC);
        msg.attributes = vec![
            TcAttribute::Kind("tbf".to_string()),
            TcAttribute::Options(tb.options()),
        ];
        self.ack(
            "set tbf qdisc",
            &format!("ifindex {dev}"),
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
    }

    /// Redirects everything arriving on `dev` to the egress of `to`: a fresh ingress qdisc on
    /// `dev` (the old one and its filters are dropped first) with one match-all u32 filter.
    pub async fn set_ingress_redirect(&self, dev: u32, to: u32) -> Result<(), NetlinkError> {
        self.delete_ingress_qdisc(dev).await?;
        let target = format!("ifindex {dev}");
        let mut ingress = qdisc(dev, TcHandle::INGRESS, INGRESS_HANDLE);
        ingress.attributes = vec![TcAttribute::Kind("ingress".to_string())];
        self.ack(
            "add ingress qdisc",
            &target,
            RouteNetlinkMessage::NewQueueDiscipline(ingress),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        self.ack(
            "add redirect filter",
            &target,
            RouteNetlinkMessage::NewTrafficFilter(redirect_filter(dev, to)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    /// Puts `dev` back on its default root qdisc (drops a tbf). Returns `false` (not an error)
    /// when the root qdisc already is the default.
    pub async fn delete_root_qdisc(&self, dev: u32) -> Result<bool, NetlinkError> {
        self.delete_qdisc("delete root qdisc", dev, TcHandle::ROOT)
            .await
    }

    /// Removes `dev`'s ingress qdisc and its filters. Returns `false` (not an error) when it
    /// has none.
    pub async fn delete_ingress_qdisc(&self, dev: u32) -> Result<bool, NetlinkError> {
        self.delete_qdisc("delete ingress qdisc", dev, TcHandle::INGRESS)
            .await
    }

    /// Deletes the qdisc of `dev` under `parent`; `false` when there is none.
    async fn delete_qdisc(
        &self,
        op: &'static str,
        dev: u32,
        parent: TcHandle,
    ) -> Result<bool, NetlinkError> {
        let msg = qdisc(dev, parent, TcHandle::UNSPEC);
        self.remove(
            op,
            &format!("ifindex {dev}"),
            RouteNetlinkMessage::DelQueueDiscipline(msg),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Nla;

    #[test]
    fn tbf_parameters_match_tc_for_100_mbit() {
        // tc qdisc … tbf rate 100mbit burst 32kb latency 50ms
        let tb = TokenBucket {
            rate: 12_500_000,
            burst: 32 * 1024,
            latency_us: 50_000,
        };
        assert_eq!(tb.limit(), 625_000 + 32_768);
        let q = tb.qopt();
        assert_eq!(q.len(), 36, "sizeof(struct tc_tbf_qopt)");
        assert_eq!(q[1], TC_LINKLAYER_ETHERNET);
        assert_eq!(&q[8..12], &12_500_000u32.to_ne_bytes());
        assert_eq!(&q[24..28], &tb.limit().to_ne_bytes());
        // 32768 B at 12.5 MB/s = 2.62144 ms = 40960 ticks of 64 ns.
        assert_eq!(&q[28..32], &40_960u32.to_ne_bytes());
        assert_eq!(tb.options().len(), 2);
    }

    #[test]
    fn rates_beyond_32_bits_carry_rate64() {
        let tb = TokenBucket {
            rate: 12_500_000_000, // 100 Gbit/s
            burst: 32 * 1024,
            latency_us: 50_000,
        };
        assert_eq!(&tb.qopt()[8..12], &u32::MAX.to_ne_bytes());
        assert!(tb.options().iter().any(|o| matches!(o,
            TcOption::Other(n) if n.kind() == TCA_TBF_RATE64)));
    }

    #[test]
    fn redirect_filter_is_priority_1_all_protocols_u32() {
        let m = redirect_filter(3, 9);
        assert_eq!(m.header.index, 3);
        assert_eq!(m.header.parent, INGRESS_HANDLE);
        assert_eq!(m.header.info, (1 << 16) | u32::from(ETH_P_ALL.to_be()));
        assert_eq!(m.attributes[0], TcAttribute::Kind("u32".to_string()));
    }
}
