//! Python faulthandler dumps and macOS `sample` reports, and the hang signatures run on them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsdiag::stacks::{faulthandler, sample, signatures};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut threads = faulthandler::parse(&text);
    threads.extend(sample::parse(&text));
    let _ = signatures::matches(&threads);
});
