//! The procfs text decoders and the XNU byte decoders, on bytes as the kernel might return them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsdiag::platform::{linux, xnu};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = linux::parse_syscall(&text);
    let _ = linux::parse_wchan(&text);
    let _ = linux::parse_psi(&text);
    let _ = linux::parse_btime(&text);
    let _ = linux::parse_sigcgt(&text);
    let _ = linux::parse_cmdline(data);
    let mut sockets = std::collections::HashMap::new();
    let _ = linux::sockdiag::parse_unix_diag_dump(data, &mut sockets);
    let _ = xnu::parse_procargs2(data);
    let _ = xnu::sigcatch(data);
});
