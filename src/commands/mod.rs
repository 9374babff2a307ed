//! One module per subcommand: its arguments become a library call's options, the report it
//! returns is printed as a table or as JSON, and the monitoring status becomes the exit code.

pub mod check;
pub mod completions;
pub mod demo;
pub mod fds;
pub mod fleet;
pub mod history;
pub mod logs;
pub mod mem;
pub mod postmortem;
pub mod record;
pub mod registry;
pub mod repro;
pub mod run;
pub mod snapshot;
pub mod stacks;
pub mod threads;
pub mod top;
pub mod watch;

use crate::platform::Platform;
use crate::render::Style;

/// What every command needs: the OS backend (shared with the threads of `top`) and how to
/// print.
pub struct Ctx {
    pub platform: std::sync::Arc<dyn Platform>,
    pub style: Style,
    pub json: bool,
}

impl Ctx {
    /// A report as JSON (`--json`), else as `text` writes it in the context's style.
    pub fn emit<T: serde::Serialize>(
        &self,
        out: &mut dyn std::io::Write,
        report: &T,
        text: impl FnOnce(&T, &Style, &mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if self.json {
            crate::render::json(out, report)
        } else {
            text(report, &self.style, out)
        }
    }
}
