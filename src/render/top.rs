//! `mlsdiag top`'s frame, drawn into a ratatui buffer: the header (host, memory, pressure, the
//! status `check` would exit with), the process tree with a row per worker, the pane, and the
//! help line. Pure: the same [`TopFrame`] and size draw the same cells, which is what the
//! snapshot tests pin (ratatui's test backend) and what `top --once` prints.
//!
//! Columns that do not fit are dropped, least telling first, so 80 columns still show the
//! verdict, the activity and the evidence of progress. Without colour (NO_COLOR, `--color
//! never`) the same emphasis comes from bold, reverse video and upper case.

use std::fmt::Write as _;
use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap,
};

use super::{clip_name, sanitize};
use crate::fmt::{bytes, duration};
use crate::model::{ParentRow, PressureLevel, TopFrame, TopRow, Verdict, WorkerRow};

const HELP: &str = "↑↓/jk select  e evidence  s stacks  t threads  f fds  l log  S snapshot  \
                    / filter  K SIGTERM  PgUp/PgDn scroll  q quit";
const HELP_SHORT: &str = "↑↓jk e:evidence s:stacks t:threads f:fds l:log S:snap /:filter K:term q";
const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[derive(Clone, Copy, PartialEq)]
enum Col {
    Pid,
    Name,
    Verdict,
    Activity,
    State,
    Cpu,
    Memory,
    Trend,
    Gpu,
    Threads,
    InFlight,
    Oldest,
    Quiet,
    TokS,
}

impl Col {
    /// Header, width, and rank: columns are dropped from the highest rank down.
    fn spec(self, f: &TopFrame) -> (&'static str, u16, u8) {
        match self {
            Col::Pid => ("PID", 7, 0),
            Col::Name => ("NAME", 14, 0),
            Col::Verdict => ("VERDICT", 8, 0),
            Col::Activity => ("ACTIVITY", 9, 1),
            Col::State => ("S", 1, 6),
            Col::Cpu => ("%CPU", 5, 1),
            Col::Memory => (if f.footprint { "FOOTPRNT" } else { "RSS" }, 9, 2),
            Col::Trend => ("TREND", 10, 5),
            Col::Gpu => ("GPU%", 4, 3),
            Col::Threads => ("THR", 3, 7),
            Col::InFlight => ("REQS", 4, 2),
            Col::Oldest => ("OLDEST", 6, 1),
            Col::Quiet => ("QUIET", 6, 1),
            Col::TokS => ("TOK/S", 6, 3),
        }
    }
}

/// The columns that fit `width`, and the width left to NAME.
fn columns(f: &TopFrame, width: u16) -> (Vec<Col>, u16) {
    use Col::*;
    let mut cols = vec![
        Pid, Name, Verdict, Activity, State, Cpu, Memory, Trend, Gpu, Threads, InFlight, Oldest,
        Quiet, TokS,
    ];
    cols.retain(|c| (*c != Gpu || f.gpu) && (*c != TokS || f.tokens));
    // The highlight symbol takes 2 columns; each column is followed by one space.
    let used = |cols: &[Col]| -> u16 { 2 + cols.iter().map(|c| c.spec(f).1 + 1).sum::<u16>() };
    while used(&cols) > width {
        let Some((i, _)) = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.spec(f).2 > 0)
            .max_by_key(|(_, c)| c.spec(f).2)
        else {
            break;
        };
        cols.remove(i);
    }
    let name = 14 + width.saturating_sub(used(&cols)).min(18);
    (cols, name)
}

/// Draws the frame into `area` of `buf`.
pub fn draw(f: &TopFrame, color: bool, area: Rect, buf: &mut Buffer) {
    let message = f.editing_filter || f.message.is_some();
    let fixed = 3 + 1 + u16::from(message);
    let avail = area.height.saturating_sub(fixed);
    let wanted = u16::try_from(f.rows.len() + 1).unwrap_or(u16::MAX);
    // Every row when the area was sized for the whole frame (`--once`); else the tree gets at
    // most 3/5 of the room and the pane the rest.
    let share = u16::try_from(u32::from(avail) * 3 / 5).unwrap_or(avail);
    let table_h = if area.height >= height(f, area.width) {
        wanted.min(avail)
    } else {
        wanted.min(share.max(wanted.min(6))).min(avail)
    };
    let [header, table, pane, msg, help] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(table_h),
        Constraint::Min(0),
        Constraint::Length(u16::from(message)),
        Constraint::Length(1),
    ])
    .areas(area);
    Paragraph::new(header_lines(f, color)).render(header, buf);
    rows_table(f, color, table, buf);
    pane_block(f, color, pane, buf);
    if message {
        let text = if f.editing_filter {
            format!("filter: {}▏ (Enter keeps it, Esc clears it)", f.filter)
        } else {
            f.message.clone().unwrap_or_default()
        };
        Paragraph::new(Line::styled(
            sanitize(&text),
            Style::new().add_modifier(Modifier::BOLD),
        ))
        .render(msg, buf);
    }
    let help_text = if area.width as usize >= HELP.chars().count() {
        HELP
    } else {
        HELP_SHORT
    };
    Paragraph::new(Line::styled(
        help_text,
        Style::new().add_modifier(Modifier::DIM),
    ))
    .render(help, buf);
}

/// The height that shows every row and every pane line, wrapped at `width` (`top --once`).
pub fn height(f: &TopFrame, width: u16) -> u16 {
    let message = usize::from(f.editing_filter || f.message.is_some());
    let rows = f.rows.len() + 1;
    let pane = wrapped_rows(&f.pane.lines, width) + 2;
    u16::try_from(3 + rows + pane + message + 1).unwrap_or(u16::MAX)
}

/// Rows `lines` take when wrapped at `width`. Words wrap before the edge: counted a little
/// short of it, never too few.
fn wrapped_rows(lines: &[String], width: u16) -> usize {
    let w = usize::from(width.saturating_sub(12).max(1));
    lines
        .iter()
        .map(|l| l.chars().count().div_ceil(w).max(1))
        .sum()
}

fn header_lines(f: &TopFrame, color: bool) -> Vec<Line<'static>> {
    let at = f.at.map_or_else(
        || "waiting for the first round".to_string(),
        |t| {
            format!(
                "{} UTC, round {} (took {:.1}s, every {})",
                t.format("%H:%M:%S"),
                f.round,
                f.took_secs,
                duration(Duration::from_secs_f64(f.interval_secs))
            )
        },
    );
    let first = format!("mlsdiag top · {} · {at}", sanitize(&f.host));
    let mut second = Vec::new();
    let status = Span::raw(format!(
        "{} (check exits {})",
        f.status.label(),
        f.exit_code
    ));
    second.push(match (f.exit_code, color) {
        (0, true) => status.green(),
        (1, true) => status.yellow().bold(),
        (0, false) => status,
        (_, true) => status.red().bold(),
        (_, false) => status.bold(),
    });
    let counts: Vec<String> = f
        .counts
        .iter()
        .map(|(v, n)| format!("{n} {}", v.label()))
        .collect();
    if !counts.is_empty() {
        second.push(Span::raw(format!(": {}", counts.join(", "))));
    }
    let mut third = Vec::new();
    if let Some(m) = &f.memory {
        let used = m.total_bytes.saturating_sub(m.available_bytes);
        third.push(Span::raw(format!(
            "memory {} used of {}, pressure ",
            bytes(used),
            bytes(m.total_bytes)
        )));
        let p = Span::raw(m.pressure.label().to_string());
        third.push(match (m.pressure, color) {
            (PressureLevel::Normal, _) => p,
            (PressureLevel::Warning, true) => p.yellow(),
            (PressureLevel::Critical, true) => p.red().bold(),
            (_, false) => p.bold(),
        });
    }
    vec![Line::raw(first), Line::from(second), Line::from(third)]
}

use ratatui::style::Stylize as _;

fn verdict_style(v: Verdict, color: bool) -> Style {
    let s = Style::new();
    match (v, color) {
        (Verdict::Healthy, true) => s.green(),
        (Verdict::Healthy, false) => s,
        (Verdict::Hung | Verdict::Crashed, true) => s.red().bold(),
        (Verdict::Orphan, true) => s.magenta().bold(),
        (_, true) => s.yellow().bold(),
        (_, false) => s.bold(),
    }
}

fn rows_table(f: &TopFrame, color: bool, area: Rect, buf: &mut Buffer) {
    let (cols, name_w) = columns(f, area.width);
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| Constraint::Length(if *c == Col::Name { name_w } else { c.spec(f).1 }))
        .collect();
    let header = Row::new(cols.iter().map(|c| Cell::from(c.spec(f).0)))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows: Vec<Row> = f
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            TopRow::Parent(p) => parent(p, &cols, color),
            TopRow::Worker(w) => {
                let last = !matches!(f.rows.get(i + 1), Some(TopRow::Worker(_)));
                worker(w, &cols, name_w, last, color)
            }
        })
        .collect();
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .highlight_symbol("> ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(f.selected);
    StatefulWidget::render(table, area, buf, &mut state);
}

fn parent(p: &ParentRow, cols: &[Col], color: bool) -> Row<'static> {
    let style = match (p.orphans, color) {
        (true, true) => Style::new().magenta().bold(),
        (true, false) => Style::new().bold(),
        (false, _) => Style::new().add_modifier(Modifier::DIM),
    };
    let cells = cols.iter().map(|c| match c {
        Col::Pid => Cell::from(p.pid.map(|p| p.to_string()).unwrap_or_default()),
        Col::Name => Cell::from(sanitize(&p.label)),
        _ => Cell::from(""),
    });
    Row::new(cells).style(style)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn secs(s: f64) -> String {
    duration(Duration::from_secs_f64(s.max(0.0)))
}

fn worker(w: &WorkerRow, cols: &[Col], name_w: u16, last: bool, color: bool) -> Row<'static> {
    let branch = if last { "└ " } else { "├ " };
    let cells = cols.iter().map(|c| match c {
        Col::Pid => Cell::from(w.pid.to_string()),
        Col::Name => Cell::from(fit(&format!("{branch}{}", clip_name(&w.name)), name_w)),
        Col::Verdict => {
            let label = match w.verdict {
                Verdict::Healthy => "healthy".to_string(),
                v => v.label().to_uppercase(),
            };
            Cell::from(label).style(verdict_style(w.verdict, color))
        }
        Col::Activity => Cell::from(if w.gone { "gone" } else { w.activity.label() }),
        Col::State => Cell::from(opt(w.state, |s| s.to_string())),
        Col::Cpu => Cell::from(opt(w.cpu_percent, |c| format!("{c:5.1}"))),
        Col::Memory => Cell::from(opt(w.memory_bytes, bytes)),
        Col::Trend => Cell::from(sparkline(&w.memory_history, 10)),
        Col::Gpu => Cell::from(opt(w.gpu_percent, |g| format!("{g:4.0}"))),
        Col::Threads => Cell::from(opt(w.threads, |n| n.to_string())),
        Col::InFlight => Cell::from(match (w.in_flight, w.in_flight_known) {
            (0, true) => "0".to_string(),
            (0, false) => "-".to_string(),
            // Logged starts without a logged end: context, not proof (the format logs no ends).
            (n, false) => format!("{n}?"),
            (n, true) => n.to_string(),
        }),
        Col::Oldest => Cell::from(opt(w.oldest_in_flight_secs, secs)),
        Col::Quiet => Cell::from(opt(w.since_progress_secs, |q| {
            format!("{}{}", if w.quiet_at_least { "≥" } else { "" }, secs(q))
        })),
        Col::TokS => Cell::from(opt(w.tokens_per_sec, |t| format!("{t:.1}"))),
    });
    let row = Row::new(cells.collect::<Vec<_>>());
    if w.gone {
        row.style(Style::new().add_modifier(Modifier::DIM))
    } else {
        row
    }
}

/// `text` cut to `width` characters in the middle, with `…`: worker names share their start
/// (`mlx-server-v3-…`) and differ at the end, so both ends stay.
fn fit(text: &str, width: u16) -> String {
    let w = width as usize;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= w {
        return text.to_string();
    }
    let head = w.saturating_sub(1) / 2;
    let tail = w.saturating_sub(1) - head;
    let mut s: String = chars[..head].iter().collect();
    s.push('…');
    s.extend(&chars[chars.len() - tail..]);
    s
}

/// The last `width` points as block characters, scaled between their minimum and maximum.
pub fn sparkline(points: &[u64], width: usize) -> String {
    let pts = &points[points.len().saturating_sub(width)..];
    let (Some(lo), Some(hi)) = (pts.iter().min(), pts.iter().max()) else {
        return String::new();
    };
    pts.iter()
        .map(|&p| {
            if hi == lo {
                SPARK[0]
            } else {
                SPARK[((p - lo) as f64 / (hi - lo) as f64 * 7.0).round() as usize]
            }
        })
        .collect()
}

fn pane_block(f: &TopFrame, color: bool, area: Rect, buf: &mut Buffer) {
    let title_style = if color {
        Style::new().cyan().bold()
    } else {
        Style::new().bold()
    };
    let block = Block::new()
        .borders(Borders::TOP | Borders::BOTTOM)
        .title(Span::styled(
            format!(" {} ", sanitize(&f.pane.title)),
            title_style,
        ));
    let lines: Vec<Line> = f
        .pane
        .lines
        .iter()
        .map(|l| Line::raw(sanitize(l)))
        .collect();
    let inner = area.height.saturating_sub(2) as usize;
    let rows = wrapped_rows(&f.pane.lines, area.width);
    let scroll = u16::try_from(f.pane.scroll.min(rows.saturating_sub(inner))).unwrap_or(u16::MAX);
    Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(area, buf);
}

/// A drawn buffer as text, one line per row without trailing blanks; with `color`, the cells'
/// colours and emphasis as ANSI escapes (`top --once` on a terminal).
pub fn text(buf: &Buffer, color: bool) -> String {
    let mut out = String::new();
    let area = buf.area;
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut current = Style::new();
        for x in area.left()..area.right() {
            let cell = &buf[(x, y)];
            let style = cell.style();
            if color && style != current {
                line.push_str(&sgr(style));
                current = style;
            }
            line.push_str(cell.symbol());
        }
        let mut line = line.trim_end().to_string();
        if color && current != Style::new() {
            line.push_str("\x1b[0m");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The escape that sets `s` from a reset state.
fn sgr(s: Style) -> String {
    let mut codes = vec!["0".to_string()];
    let m = s.add_modifier;
    for (flag, code) in [
        (Modifier::BOLD, "1"),
        (Modifier::DIM, "2"),
        (Modifier::UNDERLINED, "4"),
        (Modifier::REVERSED, "7"),
    ] {
        if m.contains(flag) {
            codes.push(code.into());
        }
    }
    let fg = match s.fg {
        Some(Color::Red) => Some("31"),
        Some(Color::Green) => Some("32"),
        Some(Color::Yellow) => Some("33"),
        Some(Color::Magenta) => Some("35"),
        Some(Color::Cyan) => Some("36"),
        _ => None,
    };
    codes.extend(fg.map(str::to_string));
    format!("\x1b[{}m", codes.join(";"))
}
