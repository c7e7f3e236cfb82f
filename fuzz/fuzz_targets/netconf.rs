//! Any stdin: the netconf parser returns a netconf or a CNI error, never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cni_sriov::netconf::NetConf::parse(data);
});
