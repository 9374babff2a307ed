//! User log formats (`--format-file`): the TOML, then the first line of input after a NUL
//! through the format it describes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsdiag::logs::event::ParseCtx;
use mlsdiag::logs::formats::Custom;

fuzz_target!(|data: &[u8]| {
    let (toml, lines) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(toml) = std::str::from_utf8(toml) else { return };
    if let Ok(custom) = Custom::from_toml(toml, std::path::Path::new("fuzz.toml")) {
        let format = mlsdiag::logs::Format::Custom(Box::new(custom));
        let mut ctx = ParseCtx::default();
        for line in lines.split(|&b| b == b'\n') {
            let _ = format.parse(line, &mut ctx);
        }
    }
});
