//! The manifests under deploy/ agree with each other and with the binaries: resource names, paths,
//! image, binary names and flags, and the embedded pool config, pod table and netconf parse with
//! the same code the agent and the CNI use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::{Path, PathBuf};

use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml(name: &str) -> Value {
    let text =
        std::fs::read_to_string(deploy().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} missing or not a string"))
}

#[test]
fn manifests_agree() {
    let ds = yaml("daemonset.yaml");
    let pools_cm = yaml("configmap-pools.yaml");
    let table_cm = yaml("configmap-podtable.yaml");
    let nad = yaml("multus/networkattachmentdefinition.yaml");
    let sts = hw_tests::kube_deploy::yaml_docs("deploy/examples/statefulset-db.yaml")
        .into_iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("the example has a StatefulSet");
    let primary: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("cni/10-db-net.conflist")).unwrap(),
    )
    .expect("the primary-network conflist is JSON");
    let containerfile = std::fs::read_to_string(deploy().join("Containerfile")).unwrap();

    // DaemonSet: the privileges and host views the agent and the CNI installer need.
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(
        pod["hostPID"], true,
        "/proc/<pid>/ns/net paths need the host's PIDs"
    );
    let agent = &pod["containers"][0];
    assert_eq!(agent["securityContext"]["privileged"], true);
    let init = &pod["initContainers"][0];
    assert_eq!(
        init["image"], agent["image"],
        "installer and agent must ship the same build"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let host_path = |vol: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == vol)
            .map(|v| v["hostPath"]["path"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("volume {vol} not defined"))
    };
    let mount_of = |c: &Value, path: &str| -> Option<(String, Value)> {
        c["volumeMounts"].as_array()?.iter().find_map(|m| {
            let mp = m["mountPath"].as_str()?;
            (path == mp || path.starts_with(&format!("{mp}/")))
                .then(|| (m["name"].as_str().unwrap_or("").to_string(), m.clone()))
        })
    };
    for c in [agent, init] {
        for m in c["volumeMounts"].as_array().unwrap() {
            host_path(s(&m["name"], "volumeMount name"));
        }
    }
    for (path, propagation) in [
        ("/var/lib/kubelet/device-plugins", None),
        ("/var/lib/kubelet/pod-resources", None),
        ("/sys", None),
        ("/opt/cni/bin", None),
        ("/etc/cni/net.d", None),
        ("/run/netns", Some("HostToContainer")),
        ("/var/run/netns", Some("HostToContainer")),
        ("/var/run/k8s.cni.cncf.io", None),
    ] {
        let (vol, m) =
            mount_of(agent, path).unwrap_or_else(|| panic!("agent does not mount {path}"));
        assert_eq!(host_path(&vol), path, "{path} must be the host's own");
        if let Some(p) = propagation {
            assert_eq!(
                m["mountPropagation"], p,
                "{path}: bind mounts made after start must appear"
            );
        }
    }
    // The installer copies the binary the NAD's "type" names into the host's CNI dir.
    let init_cmd = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "command"))
        .collect::<Vec<_>>()
        .join(" ");
    let (cni_vol, _) = mount_of(init, "/host/opt/cni/bin").expect("installer mounts the CNI dir");
    assert_eq!(host_path(&cni_vol), "/opt/cni/bin");
    assert!(
        init_cmd.contains("/usr/local/bin/sriov ") && init_cmd.contains("/host/opt/cni/bin/sriov"),
        "{init_cmd}"
    );

    // Agent flags: every one exists on `run`, and every path is mounted.
    let args: Vec<String> = agent["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| s(a, "arg").to_string())
        .collect();
    assert_eq!(args[0], "run");
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("--{name} not set"))
            .to_string()
    };
    let help = std::process::Command::new(hw_tests::bin("sriov-device-plugin"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for a in &args[1..] {
        let name = a.trim_start_matches("--").split('=').next().unwrap();
        assert!(
            help.contains(&format!("--{name}")),
            "`run` has no flag --{name}"
        );
    }
    let socket = flag("socket");
    for p in [socket.as_str(), &flag("state-dir"), &flag("config")] {
        assert!(
            mount_of(agent, p).is_some(),
            "{p} is not on a mounted volume"
        );
    }
    let cmd = s(&agent["command"][0], "agent command");
    assert!(cmd.ends_with("/sriov-device-plugin"));
    assert!(
        containerfile.contains("target/release/sriov-device-plugin")
            && containerfile.contains("target/release/sriov ")
            && !containerfile.contains("docker.io"),
        "the image builds offline from the release binaries"
    );
    assert!(
        containerfile.contains("/usr/local/bin/"),
        "image puts the binaries where the DaemonSet runs them"
    );

    // ConfigMaps: the file names the flags point at exist, and the content parses.
    let (pools_vol, _) = mount_of(agent, &flag("config")).unwrap();
    let pools_key = Path::new(&flag("config"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert_eq!(
        volumes
            .iter()
            .find(|v| v["name"] == pools_vol.as_str())
            .unwrap()["configMap"]["name"],
        pools_cm["metadata"]["name"]
    );
    let pools = device_plugin::pools::PoolConfig::parse(
        s(&pools_cm["data"][&pools_key], "pool config").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("pool ConfigMap: {e}"));
    // The pod table is watched through the API server: the flag names the ConfigMap, whose
    // `podtable.json` parses.
    assert_eq!(
        flag("pod-table-configmap"),
        format!(
            "{}/{}",
            s(&table_cm["metadata"]["namespace"], "pod table namespace"),
            s(&table_cm["metadata"]["name"], "pod table name")
        )
    );
    let table = device_plugin::podtable::PodTable::parse(
        s(
            &table_cm["data"][device_plugin::cluster::PODTABLE_KEY],
            "pod table",
        )
        .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("pod table ConfigMap: {e}"));
    rbac_allows_what_the_agent_does(pod, agent, &flag("lease-namespace"), &table_cm);

    // NAD: its resource is a configured pool, its netconf parses, and it dials the agent's socket.
    let resource = s(
        &nad["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
        "NAD resourceName",
    )
    .to_string();
    assert!(
        pools.resources.iter().any(|r| r.full_name() == resource),
        "{resource} is not a pool"
    );
    let conf =
        cni_sriov::netconf::NetConf::parse(s(&nad["spec"]["config"], "NAD config").as_bytes())
            .unwrap_or_else(|e| panic!("NAD config: {e:?}"));
    assert_eq!(
        conf.plugin_type.as_deref(),
        Some("sriov"),
        "type must name the installed binary"
    );
    assert_eq!(conf.resource_name.as_deref(), Some(resource.as_str()));
    assert_eq!(conf.agent_socket, Path::new(&socket));
    assert_eq!(conf.name, s(&nad["metadata"]["name"], "NAD name"));

    // The primary-network conflist (no Multus) is the same network as the NAD.
    // libcni hands each plugin its conf with the list's name and cniVersion added.
    let mut plugin = primary["plugins"][0].clone();
    plugin["name"] = primary["name"].clone();
    plugin["cniVersion"] = primary["cniVersion"].clone();
    let primary_conf = cni_sriov::netconf::NetConf::parse(plugin.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("conflist: {e:?}"));
    assert_eq!(primary["name"], nad["metadata"]["name"]);
    assert_eq!(
        primary_conf.resource_name.as_deref(),
        Some(resource.as_str())
    );
    assert_eq!(primary_conf.agent_socket, Path::new(&socket));

    // StatefulSet: asks for that resource; every replica has a fixed IP on that network.
    let ns = s(&sts["metadata"]["namespace"], "sts namespace");
    assert_eq!(ns, s(&nad["metadata"]["namespace"], "NAD namespace"));
    let tpl = &sts["spec"]["template"];
    let c = &tpl["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"][&resource], "1");
    let name = s(&sts["metadata"]["name"], "sts name");
    for i in 0..sts["spec"]["replicas"].as_u64().unwrap() + 1 {
        let pod = format!("{name}-{i}");
        let cfg = table
            .lookup(&conf.name, ns, &pod)
            .unwrap_or_else(|| panic!("no pod table entry for {ns}/{pod}"));
        assert!(!cfg.ips.is_empty(), "{ns}/{pod} has no fixed IP");
    }
}

/// The DaemonSet runs as rbac.yaml's ServiceAccount, which may do what the agent does (watch the
/// pod table ConfigMap, hold leases in the lease namespace, create Events) and no more than that
/// on ConfigMaps and Leases; the node name comes from the downward API.
fn rbac_allows_what_the_agent_does(pod: &Value, agent: &Value, lease_ns: &str, table_cm: &Value) {
    let docs = hw_tests::kube_deploy::yaml_docs("deploy/rbac.yaml");
    let of = |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
    let sa = of("ServiceAccount")[0];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    let rules: Vec<(&Value, &Value)> = of("Role")
        .into_iter()
        .chain(of("ClusterRole"))
        .flat_map(|r| {
            r["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |rule| (r, rule))
        })
        .collect();
    let allows = |group: &str, resource: &str, verb: &str, ns: Option<&str>| {
        rules.iter().any(|(role, rule)| {
            let has =
                |k: &str, v: &str| rule[k].as_array().is_some_and(|a| a.iter().any(|x| x == v));
            has("apiGroups", group)
                && has("resources", resource)
                && has("verbs", verb)
                && (role["kind"] == "ClusterRole"
                    || ns.is_none_or(|n| role["metadata"]["namespace"] == n))
        })
    };
    let cm_ns = table_cm["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    for verb in ["get", "list", "watch"] {
        assert!(
            allows("", "configmaps", verb, Some(cm_ns)),
            "configmaps {verb}"
        );
        assert!(allows("", "pods", verb, None), "pods {verb}");
    }
    for verb in ["get", "create", "update", "delete"] {
        assert!(
            allows("coordination.k8s.io", "leases", verb, Some(lease_ns)),
            "leases {verb}"
        );
    }
    assert!(allows("events.k8s.io", "events", "create", None));
    assert!(
        !rules
            .iter()
            .any(|(role, rule)| role["kind"] == "ClusterRole"
                && rule["resources"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r == "configmaps" || r == "leases"))),
        "ConfigMaps and Leases only in their namespace"
    );
    let env = agent["env"].as_array().expect("agent env");
    assert!(
        env.iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "NODE_NAME from the downward API"
    );
}
