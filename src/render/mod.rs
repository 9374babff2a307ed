//! Output: one table style and JSON through serde only; [`snapshot`] is the snapshot's text
//! form. The formatters they share are in [`crate::fmt`].
//!
//! Commands build a typed report; this layer turns it into text. Colour is used only when
//! stdout is a terminal and `NO_COLOR` is unset (or `--color always`), and foreign strings
//! (process names, paths) are stripped of control characters before they reach a terminal.

use std::io::{IsTerminal, Write};

use comfy_table::{Cell, Color, ContentArrangement, LineStyle, Table, TableStyle};
use serde::Serialize;

use crate::model::Verdict;

/// The house table style: no borders, one rule under the header, like `ps` with a ruler.
const HOUSE_STYLE: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));

/// How text output should look.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when asked for, or by default when stdout is a terminal and `NO_COLOR` is unset.
    pub fn detect(color: Option<bool>) -> Style {
        let color = color.unwrap_or_else(|| {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        });
        Style { color }
    }

    /// The house table: a rule under the header, dynamic width on a terminal.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_style(HOUSE_STYLE);
        if std::io::stdout().is_terminal() {
            t.set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            t.set_content_arrangement(ContentArrangement::Disabled);
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

pub mod snapshot;
