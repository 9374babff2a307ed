//! A log as a stream (stdin, gzip): the block reader, long lines and all, then the fold.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mlsdiag::logs::{Analyzer, Format, read};

fuzz_target!(|data: &[u8]| {
    let format = Format::detect(data);
    let mut a = Analyzer::for_format(&[], Duration::from_secs(300), &format);
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    let _ = read::scan(reader, &format, data.first() == Some(&b'!'), 0, |e| a.add(e));
    let _ = a.finish();
});
