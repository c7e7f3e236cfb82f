//! Any CNI_ARGS string: parsed or refused with code 4, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = cni_sriov::cni_args::CniArgs::parse(Some(s));
    }
});
