//! The orchestrator's worker registry, in every shape `registry::parse` accepts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mlsdiag::registry::parse(text);
    }
});
