//! Any pool config file: a config or an error naming the entry, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = device_plugin::pools::PoolConfig::parse(data);
});
