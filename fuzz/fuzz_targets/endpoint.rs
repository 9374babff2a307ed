//! What an OpenAI-compatible server sends back to `repro --endpoint`: status, headers, chunked
//! encoding, server-sent events.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mlsdiag::repro::endpoint::{Outcome, read_response};

fuzz_target!(|data: &[u8]| {
    let mut out = Outcome::default();
    let mut r = std::io::BufReader::new(std::io::Cursor::new(data));
    let last = std::cell::Cell::new(Instant::now());
    let _ = read_response(&mut r, Duration::from_secs(60), Instant::now(), &mut out, &last);
});
