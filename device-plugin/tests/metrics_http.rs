//! The metrics endpoint over real TCP connections on 127.0.0.1:0, and the agent's series as a
//! scrape shows them, line by line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::sync::Arc;
use std::time::Duration;

use device_plugin::health::{InventoryWatcher, ManualLinks, WatcherOptions};
use device_plugin::metrics::{AgentMetrics, MetricsServer, Registry, ServeError};
use device_plugin::pools::PoolConfig;
use sriov_hw::fixtures::{presets, write_proc_routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` raw and returns the whole answer (the server closes the connection).
async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// Serves `registry` on 127.0.0.1 (a free port) until the returned sender is used or dropped.
async fn serve_on_loopback(
    registry: Registry,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), false, registry)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx, task)
}

fn split(resp: &str) -> (&str, &str) {
    resp.split_once("\r\n\r\n").expect("no header end")
}

#[tokio::test]
async fn serves_the_agents_series_and_only_on_metrics() {
    // A small fixture host: two E810 PFs with 4 VFs each; ens2f0 will lose carrier.
    let dir = tempfile::tempdir().unwrap();
    let tree = presets::scale(&dir.path().join("sys"), 2, 4).unwrap();
    let proc_root = dir.path().join("proc");
    write_proc_routes(&proc_root, &[], &[], &[]).unwrap();
    let links = ManualLinks::new();
    let cfg = PoolConfig::parse(
        br#"{"resourceList":[{"resourceName":"vf","resourcePrefix":"example.com","selectors":{"vendors":["8086"]}}]}"#,
    )
    .unwrap();
    let w = InventoryWatcher::start(
        WatcherOptions {
            sysfs_root: tree.root().to_path_buf(),
            proc_root: Some(proc_root),
            rescan_interval: Duration::from_secs(3600),
        },
        cfg,
        Arc::new(links.clone()),
    )
    .await
    .unwrap();
    let mut rx = w.subscribe();
    links.set("ens2f0", true, false);
    tokio::time::timeout(Duration::from_secs(1), rx.changed())
        .await
        .unwrap()
        .unwrap();

    let registry = Registry::new();
    let m = AgentMetrics::new(&registry).unwrap();
    m.follow(&w);
    m.registration("example.com/vf", true);
    m.registration("example.com/vf", true);
    m.registration("example.com/vf", false);
    m.config_reload(false);
    m.pod_table_reload(true);
    m.set_allocated("example.com/vf", 2);
    m.set_attached("example.com/vf", 1);

    let (addr, stop_tx, task) = serve_on_loopback(registry).await;

    let resp = http(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let (head, body) = split(&resp);
    let mut head_lines = head.lines();
    assert_eq!(head_lines.next(), Some("HTTP/1.1 200 OK"));
    let headers: Vec<&str> = head_lines.collect();
    assert!(headers.contains(&"Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(headers.contains(&format!("Content-Length: {}", body.len()).as_str()));
    assert!(headers.contains(&"Connection: close"));

    let lines: Vec<&str> = body.lines().collect();
    for want in [
        "# TYPE sriov_devices gauge",
        "sriov_devices{resource=\"example.com/vf\",health=\"healthy\"} 4",
        "sriov_devices{resource=\"example.com/vf\",health=\"unhealthy\"} 4",
        "# TYPE sriov_devices_allocated gauge",
        "sriov_devices_allocated{resource=\"example.com/vf\"} 2",
        "sriov_devices_attached{resource=\"example.com/vf\"} 1",
        "# TYPE sriov_kubelet_registrations_total counter",
        "sriov_kubelet_registrations_total{resource=\"example.com/vf\",result=\"error\"} 1",
        "sriov_kubelet_registrations_total{resource=\"example.com/vf\",result=\"ok\"} 2",
        "sriov_config_reloads_total{result=\"error\"} 1",
        "sriov_config_reloads_total{result=\"ok\"} 0",
        "sriov_pod_table_reloads_total{result=\"error\"} 0",
        "sriov_pod_table_reloads_total{result=\"ok\"} 1",
        "# TYPE sriov_inventory_scans_total counter",
        "sriov_inventory_scans_total 1",
        "sriov_inventory_warnings 0",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{body}");
    }
    let dur: f64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("sriov_inventory_scan_duration_seconds "))
        .expect("scan duration")
        .parse()
        .unwrap();
    assert!(dur > 0.0 && dur < 10.0, "{dur}");
    // Every line is a comment or `name{labels} value`, and every family has HELP before TYPE.
    for l in &lines {
        if let Some(rest) = l.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "{l}"
            );
        } else {
            let (_, value) = l.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {l}"));
        }
    }

    // A rescan after the scrape moves the scan counter on the next scrape.
    w.rescan_now().await.unwrap();
    let resp = http(addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
    assert!(
        resp.lines().any(|l| l == "sriov_inventory_scans_total 2"),
        "{resp}"
    );

    let resp = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
    let (head, body) = split(&resp);
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(body.is_empty());

    for (req, status) in [
        ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        ("GET /metrics/x HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (
            "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        ("hello\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    ] {
        let resp = http(addr, req).await;
        assert!(resp.starts_with(status), "{req:?} → {resp}");
    }

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn refuses_non_loopback_unless_allowed() {
    let e = MetricsServer::bind("0.0.0.0:0".parse().unwrap(), false, Registry::new())
        .await
        .err()
        .expect("wildcard address accepted");
    assert!(matches!(e, ServeError::NotLoopback(_)), "{e}");
    assert!(e.to_string().contains("0.0.0.0"), "{e}");
    // Loopback in both families is fine; the wildcard too when explicitly allowed.
    MetricsServer::bind("[::1]:0".parse().unwrap(), false, Registry::new())
        .await
        .map(drop)
        .or_else(|e| match e {
            // Hosts without IPv6 on lo cannot bind ::1 at all.
            ServeError::Bind { .. } => Ok(()),
            other => Err(other),
        })
        .unwrap();
    MetricsServer::bind("0.0.0.0:0".parse().unwrap(), true, Registry::new())
        .await
        .unwrap();
}

/// Idle connections cannot pile up inside the agent: at most 16 are served at once, the rest
/// wait in the kernel's accept queue (the listener's Recv-Q, as `ss` shows it) holding none of
/// the agent's descriptors; once the idle clients go, a scrape is answered.
#[tokio::test]
async fn idle_connections_beyond_the_cap_wait_in_the_kernel() {
    let (addr, stop_tx, task) = serve_on_loopback(Registry::new()).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ss = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", addr.port())])
        .output()
        .expect("run ss");
    let ss = String::from_utf8_lossy(&ss.stdout);
    let queued: u32 = ss
        .split_whitespace()
        .nth(1)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("ss: {ss:?}"));
    assert_eq!(queued, 100 - 16, "connections not yet accepted: {ss}");
    drop(idle);
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        http(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .await
    .expect("a scrape is answered once the idle clients are gone");
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    let _ = stop_tx.send(());
    task.await.unwrap();
}
