//! Memory and time per pod table entry (a benchmark, not a test): builds tables of N entries of
//! the usual shape (one IPv4 address, a MAC every other entry, defaults with gateway, VLAN and
//! rate), parses each in this process and prints the resident-memory growth per entry (VmRSS
//! from /proc/self/status, the table kept alive), the parse time, and the bytes of JSON per
//! entry, which is what sizes `MAX_TABLE_BYTES`. Run:
//! `cargo run --release -p device-plugin --example bench_podtable [N ...]`.

use device_plugin::podtable::{MAX_TABLE_BYTES, PodTable};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn table(n: usize) -> String {
    let mut pods = Vec::with_capacity(n);
    for i in 0..n {
        // 10.0.0.2 upwards: unique, never the gateway 10.0.0.1 or the /8's edges.
        let k = i + 2;
        let ip = format!("10.{}.{}.{}/8", (k >> 16) & 255, (k >> 8) & 255, k & 255);
        let mac = if i % 2 == 0 {
            format!(
                r#", "mac": "02:00:{:02x}:{:02x}:{:02x}:01""#,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )
        } else {
            String::new()
        };
        pods.push(format!(
            r#""ns-{}/db-{i}": {{"ips": ["{ip}"]{mac}}}"#,
            i % 100
        ));
    }
    format!(
        r#"{{"networks": {{"db-net": {{"defaults": {{"gateway": "10.0.0.1", "vlan": 100, "max_tx_rate": 1000}}, "pods": {{{}}}}}}}}}"#,
        pods.join(",")
    )
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        let json = table(n);
        let before = rss_kib();
        let start = std::time::Instant::now();
        let t = match PodTable::parse(json.as_bytes()) {
            Ok(t) => t,
            Err(e) => {
                let e: String = e.to_string().chars().take(200).collect();
                println!("{n} entries ({} bytes): {e}", json.len());
                continue;
            }
        };
        let took = start.elapsed();
        let after = rss_kib();
        println!(
            "{n} entries: {:.0} bytes of JSON each ({:.1} MiB; cap {} MiB ≈ {} entries), parse {:.0} ms, resident +{:.0} bytes per entry",
            json.len() as f64 / n as f64,
            json.len() as f64 / (1 << 20) as f64,
            MAX_TABLE_BYTES >> 20,
            MAX_TABLE_BYTES / (json.len() / n).max(1),
            took.as_secs_f64() * 1e3,
            (after.saturating_sub(before) * 1024) as f64 / n as f64
        );
        assert_eq!(t.entries(), n);
        drop(t);
    }
}
