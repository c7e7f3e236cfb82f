//! The kubelet side, driven by the kubelet stand-in: the agent registers each pool, the stand-in
//! follows ListAndWatch, and Allocate hands out VFs the way kubelet's device manager does.

use std::time::{Duration, Instant};

use sriov_proto::deviceplugin::v1beta1 as api;

use crate::kubelet::{DeviceList, KubeletStandIn};

/// Waits for `resource` to register and for a ListAndWatch list of `want` healthy devices.
pub async fn registered_list(
    kubelet: &KubeletStandIn,
    resource: &str,
    want: usize,
    since: Instant,
) -> Result<DeviceList, String> {
    let reg = kubelet
        .wait_registration(resource, since, Duration::from_secs(30))
        .await
        .ok_or_else(|| format!("{resource} did not register within 30 s"))?;
    if reg.request.version != sriov_proto::kubelet::DEVICE_PLUGIN_API_VERSION {
        return Err(format!("registered with version {}", reg.request.version));
    }
    let healthy =
        |l: &DeviceList| l.devices.len() == want && l.devices.iter().all(|d| d.health == "Healthy");
    match kubelet
        .wait_devices(resource, Duration::from_secs(30), healthy)
        .await
    {
        Some(l) => Ok(l),
        None => Err(format!(
            "no list of {want} healthy devices for {resource}; last: {:?}",
            kubelet.devices(resource).map(|l| l
                .devices
                .iter()
                .map(|d| format!("{}={}", d.id, d.health))
                .collect::<Vec<_>>())
        )),
    }
}

/// Allocate for one container with `ids`, as kubelet does when a pod is admitted.
pub async fn allocate(
    kubelet: &KubeletStandIn,
    resource: &str,
    ids: &[String],
) -> Result<api::ContainerAllocateResponse, String> {
    let mut plugin = kubelet.plugin(resource).await?;
    let resp = plugin
        .allocate(api::AllocateRequest {
            container_requests: vec![api::ContainerAllocateRequest {
                devices_ids: ids.to_vec(),
            }],
        })
        .await
        .map_err(|s| format!("Allocate {ids:?}: {}", s.message()))?
        .into_inner();
    resp.container_responses
        .into_iter()
        .next()
        .ok_or_else(|| "Allocate returned no container response".to_string())
}

/// `PCIDEVICE_<PREFIX>_<NAME>` for a resource name (`qemu.io/igbvf` → `PCIDEVICE_QEMU_IO_IGBVF`).
pub fn env_name(resource: &str) -> String {
    let mut s = String::from("PCIDEVICE_");
    s.extend(resource.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_name_as_the_reference_plugin() {
        assert_eq!(super::env_name("qemu.io/igbvf"), "PCIDEVICE_QEMU_IO_IGBVF");
    }
}
