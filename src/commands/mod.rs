//! One module per subcommand. Each collects facts, builds a typed report, and renders it as a
//! table or as JSON; each returns the monitoring status that becomes the exit code.

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
pub mod snapshot;
pub mod stacks;
pub mod threads;
pub mod watch;

use crate::platform::Platform;
use crate::render::Style;

/// What every command needs: the OS backend and how to print.
pub struct Ctx {
    pub platform: Box<dyn Platform>,
    pub style: Style,
    pub json: bool,
}
