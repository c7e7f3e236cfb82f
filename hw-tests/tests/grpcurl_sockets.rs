//! Every gRPC socket of ours answers grpcurl, a grpc-go client that (like kubelets before 1.26)
//! sends the socket path as `:authority` over a Unix socket, which h2 alone resets with
//! PROTOCOL_ERROR. The agent runs in kubelet mode on an emulated NIC, so both its node API
//! socket and the per-pool device plugin sockets exist; grpcurl is `SRIOV_GRPCURL`
//! (`scripts/build-grpcurl.sh`, set by `scripts/test.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::{Path, PathBuf};
use std::process::Command;

use hw_tests::cni_fixture::RESOURCE;
use hw_tests::kubelet_bed::registered_bed;
use hw_tests::require_root;
use serde_json::Value;

fn grpcurl() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("SRIOV_GRPCURL")?);
    p.is_file().then_some(p)
}

fn proto_dir(rel: &str) -> String {
    format!("{}/../proto/proto/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// grpcurl with its default authority (the socket path); the parsed JSON answer.
fn call(grpcurl: &Path, socket: &Path, protos: (&str, &str), method: &str) -> Value {
    let out = Command::new(grpcurl)
        .args(["-plaintext", "-unix", "-max-time", "5", "-import-path"])
        .arg(proto_dir(protos.0))
        .args(["-proto", protos.1, "-d", "{}"])
        .arg(socket)
        .arg(method)
        .output()
        .expect("run grpcurl");
    assert!(
        out.status.success(),
        "grpcurl {method} on {}: {}",
        socket.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "grpcurl {method}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_with_its_default_authority_is_answered_on_every_socket() {
    if !require_root("grpcurl_with_its_default_authority_is_answered_on_every_socket") {
        return;
    }
    let Some(grpcurl) = grpcurl() else {
        hw_tests::skip(
            "grpcurl_with_its_default_authority_is_answered_on_every_socket",
            "SRIOV_GRPCURL is not set (run scripts/build-grpcurl.sh)",
        );
        return;
    };
    let (_kubelet, bed, reg) = registered_bed(2).await;
    let vfs = tokio::task::block_in_place(|| bed.vf_pcis());

    let status = tokio::task::block_in_place(|| {
        call(
            &grpcurl,
            &bed.agent.socket,
            ("node/v1", "node.proto"),
            "sriov.node.v1.Node/Status",
        )
    });
    let pool = &status["pools"][0];
    assert_eq!(pool["resource"], RESOURCE, "{status}");
    assert_eq!(pool["free"].as_array().map(Vec::len), Some(2), "{status}");

    let plugin = bed.kubelet_dir().join(&reg.request.endpoint);
    let dp = ("deviceplugin/v1beta1", "api.proto");
    let opts = tokio::task::block_in_place(|| {
        call(
            &grpcurl,
            &plugin,
            dp,
            "v1beta1.DevicePlugin/GetDevicePluginOptions",
        )
    });
    assert_eq!(opts["getPreferredAllocationAvailable"], true, "{opts}");
    // A server stream: grpcurl prints the first response, then -max-time ends the call.
    let out = tokio::task::block_in_place(|| {
        Command::new(&grpcurl)
            .args(["-plaintext", "-unix", "-max-time", "2", "-import-path"])
            .arg(proto_dir(dp.0))
            .args(["-proto", dp.1, "-d", "{}"])
            .arg(&plugin)
            .arg("v1beta1.DevicePlugin/ListAndWatch")
            .output()
            .expect("run grpcurl")
    });
    let first: Value = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| {
            panic!(
                "no ListAndWatch response: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut ids: Vec<&str> = first["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["ID"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vfs.iter().map(String::as_str).collect::<Vec<_>>(),
        "{first}"
    );
}
