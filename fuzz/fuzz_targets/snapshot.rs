//! Snapshot JSON as `history` and `postmortem` read it, and its text rendering.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<mlsdiag::model::Snapshot>(data) {
        let _ = mlsdiag::render::snapshot::text(&s);
    }
});
