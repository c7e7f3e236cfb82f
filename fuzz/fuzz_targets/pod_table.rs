//! Any pod table file: a table or an error naming the entries, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = device_plugin::podtable::PodTable::parse(data) {
        let _ = t.lookup("n", "default", "a");
    }
});
