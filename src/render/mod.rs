//! Output: one table style and JSON through serde only; [`snapshot`] is the snapshot's text
//! form. The formatters they share are in [`crate::fmt`].
//!
//! Commands build a typed report; this layer turns it into text. Colour is used only when
//! stdout is a terminal and `NO_COLOR` is unset (or `--color always`), and foreign strings
//! (process names, paths) are stripped of control characters before they reach a terminal.
//!
//! Foreign strings are also bounded here, whatever their size in the file or process they came
//! from: a name is shown to [`NAME_CHARS`] characters, other text to [`TEXT_CHARS`], cut with
//! `…` (this module's [`sanitize`], [`md_text`] and [`md_code`] do both). Rendering costs what
//! is shown: a 63 MiB name in a registry once took `check`'s table 90 s, as comfy-table splits
//! a cell longer than 65,535 columns a piece at a time, rescanning the rest each time.

use std::io::{IsTerminal, Write};

use comfy_table::{Cell, Color, ContentArrangement, LineStyle, Table, TableStyle};
use serde::Serialize;

use crate::fmt::{clip, truncate};
use crate::model::Verdict;

/// The most characters of a name (a worker's, a model's, a host's) a cell or a line shows.
pub const NAME_CHARS: usize = 256;
/// The most characters of any other text from a file or a process (evidence, notes, commands,
/// paths, frames) one cell or line shows.
pub const TEXT_CHARS: usize = 4096;

/// A name, safe for a terminal and at most [`NAME_CHARS`] characters.
pub fn clip_name(s: &str) -> String {
    clip(s, NAME_CHARS)
}

/// Other foreign text, safe for a terminal ([`crate::fmt::sanitize`]) and at most
/// [`TEXT_CHARS`] characters.
pub fn sanitize(s: &str) -> String {
    clip(s, TEXT_CHARS)
}

/// Foreign text in Markdown ([`crate::fmt::md_text`]), at most [`TEXT_CHARS`] characters of it.
pub fn md_text(s: &str) -> String {
    crate::fmt::md_text(&truncate(s, TEXT_CHARS))
}

/// Foreign text in a Markdown code span ([`crate::fmt::md_code`]), at most [`TEXT_CHARS`]
/// characters of it.
pub fn md_code(s: &str) -> String {
    crate::fmt::md_code(&truncate(s, TEXT_CHARS))
}

/// The house table style: no borders, one rule under the header, like `ps` with a ruler.
const HOUSE_STYLE: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));

/// How text output should look: decided once, from the terminal, then passed to every
/// renderer, which reads nothing else (so the same report renders the same way anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    /// Columns to fit tables into; `None`: never wrap (output to a pipe or a file).
    pub width: Option<u16>,
}

impl Style {
    /// Plain text that never wraps: what a pipe gets, and what tests pin.
    pub const PLAIN: Style = Style {
        color: false,
        width: None,
    };

    /// Colour when asked for, or by default when stdout is a terminal and `NO_COLOR` is unset;
    /// on a terminal, tables fit its width.
    pub fn detect(color: Option<bool>) -> Style {
        let tty = std::io::stdout().is_terminal();
        let color = color
            .unwrap_or_else(|| std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && tty);
        // comfy-table reads the terminal's size (a table not yet given a width reports it).
        let width = if tty { Table::new().width() } else { None };
        Style { color, width }
    }

    /// The house table: a rule under the header, fitted to the width when there is one.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_style(HOUSE_STYLE);
        match self.width {
            Some(w) => {
                t.set_content_arrangement(ContentArrangement::Dynamic);
                t.set_width(w);
            }
            None => {
                t.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        if !self.color {
            t.force_no_tty();
        } else {
            t.enforce_styling();
        }
        t.set_header(header.iter().map(Cell::new));
        t
    }

    pub fn verdict_cell(&self, v: Verdict) -> Cell {
        let cell = Cell::new(v.label());
        if !self.color {
            return cell;
        }
        match v {
            Verdict::Healthy => cell.fg(Color::Green),
            Verdict::Orphan | Verdict::Leaking | Verdict::Unknown => cell.fg(Color::Yellow),
            Verdict::Hung | Verdict::Crashed => cell.fg(Color::Red),
        }
    }
}

/// Write a report as pretty JSON followed by a newline.
pub fn json<T: Serialize>(out: &mut dyn Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

pub mod check;
pub mod fds;
pub mod fleet;
pub mod history;
pub mod logs;
pub mod mem;
pub mod postmortem;
pub mod prometheus;
pub mod registry;
pub mod snapshot;
pub mod stacks;
pub mod threads;
pub mod top;
pub mod watch;
