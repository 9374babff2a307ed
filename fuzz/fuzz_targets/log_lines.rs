//! Server log lines (MLS and mlx_lm.server) through the parser and the fold, as `check` and
//! `logs` use them, including a worker's share with a process start time.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mlsdiag::logs::event::ParseCtx;
use mlsdiag::logs::{Analyzer, Format};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Mls, Format::MlxLm, Format::detect(data)] {
        let mut a = Analyzer::for_format(&[8000, 10000], Duration::from_secs(300), &format);
        let mut ctx = ParseCtx::default();
        let mut events = Vec::new();
        for (i, line) in data.split(|&b| b == b'\n').enumerate() {
            events.clear();
            format.parse_into(line, &mut ctx, &mut events);
            for e in events.iter_mut() {
                e.line = i as u64 + 1;
                a.add(e);
            }
        }
        let analysis = a.finish();
        let since = chrono::DateTime::from_timestamp(1_767_654_000, 0);
        // Both answers of the OS about the other pids under the name, and the name's lines
        // given to this process or not.
        let _ = analysis.for_worker(Some("mlx-server-v3-1"), 49387, true, since, &|p| p % 2 == 0);
        let _ = analysis.for_process(Some("mlx-server-v3-1"), false, 49387, true, since, &|_| {
            true
        });
        let _ = serde_json::to_string(&analysis.in_flight);
    }
});
