//! Recordings (`mlsdiag record`, `--fixture`), the neutral model as JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<mlsdiag::platform::fixture::Recording>(data);
});
