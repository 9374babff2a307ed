//! `mlsdiag top`: the live view an operator keeps open. Rounds run on their own thread (a
//! round samples for `--window`, so keys never wait for one), and so does each pane's job; the
//! drawing thread only reads keys, folds what arrives into [`App`] and redraws. The terminal
//! is restored on `q`, Ctrl-C, SIGTERM and panics (ratatui's hook). `--once` prints one frame.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;

use super::Ctx;
use crate::cli::TopArgs;
use crate::model::Status;
use crate::render;
use crate::top::{
    Action, App, Input, Job, JobOutput, RoundView, TopOptions, Update, panic_text, rounds, run_job,
};
use crate::watch::Watcher;

pub fn run(args: &TopArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let opts = Arc::new(TopOptions::from(args));
    let mut app = App::new(crate::store::hostname(), opts.interval);
    if args.once {
        return once(&opts, ctx, app, out);
    }
    anyhow::ensure!(
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        "top needs a terminal; `top --once` prints one frame to a pipe"
    );
    end_on_signal()?;
    let (tx, rx) = channel();
    let watcher = Watcher::new(opts.watch.clone());
    let (platform, interval, rounds_tx) = (Arc::clone(&ctx.platform), opts.interval, tx.clone());
    std::thread::Builder::new()
        .name("top-rounds".into())
        .spawn(move || rounds(watcher, platform, interval, rounds_tx))?;
    let start_job = |job: Job| {
        let (opts, platform, tx) = (Arc::clone(&opts), Arc::clone(&ctx.platform), tx.clone());
        // A job's failure to start is shown like its result.
        let _ = std::thread::Builder::new()
            .name("top-job".into())
            .spawn(move || {
                let run = || run_job(&job, &opts, platform.as_ref());
                let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                    .unwrap_or_else(|p| {
                        JobOutput::Message(format!("the job failed: {}", panic_text(&p)))
                    });
                let _ = tx.send(Update::Done(job, output));
            });
    };
    let mut terminal = enter().inspect_err(|_| ratatui::restore())?;
    let result = ui(&mut terminal, &mut app, &rx, start_job, ctx.style.color);
    ratatui::restore();
    result?;
    Ok(Status::Ok)
}

/// One round, one frame on stdout, and check's status.
fn once(opts: &TopOptions, ctx: &Ctx, mut app: App, out: &mut dyn Write) -> anyhow::Result<Status> {
    let mut watcher = Watcher::new(opts.watch.clone());
    let round = watcher.round(ctx.platform.as_ref())?;
    let status = round.report.status;
    // --json: the round's data, which is check's document, rather than a frame of text.
    if ctx.json {
        crate::render::json(out, &round.report)?;
        return Ok(status);
    }
    let memory = ctx.platform.system_memory().ok();
    app.update(Update::Round(Box::new(RoundView::new(round, memory))));
    let frame = app.frame();
    let width = ctx.style.width.or_else(columns_env).unwrap_or(120).max(40);
    let area = Rect::new(0, 0, width, render::top::height(&frame, width));
    let mut buf = Buffer::empty(area);
    render::top::draw(&frame, ctx.style.color, area, &mut buf);
    write!(out, "{}", render::top::text(&buf, ctx.style.color))?;
    Ok(status)
}

/// Raw mode and the alternate screen, with a panic hook that restores the terminal when the
/// drawing thread panics. The other threads' panics are caught and shown in the view, so they
/// print nothing over the screen.
fn enter() -> std::io::Result<ratatui::DefaultTerminal> {
    let ui_thread = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            ratatui::restore();
            previous(info);
        }
    }));
    ratatui::crossterm::terminal::enable_raw_mode()?;
    ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::terminal::EnterAlternateScreen
    )?;
    ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
}

fn columns_env() -> Option<u16> {
    std::env::var("COLUMNS").ok()?.trim().parse().ok()
}

/// SIGINT, SIGTERM or SIGHUP from outside (Ctrl-C in the terminal arrives as a key) end `top`
/// from the signal's thread: the drawing thread may be inside the terminal library, which
/// spins on a hung-up terminal's end of input instead of returning, so it cannot be asked.
fn end_on_signal() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        // Not through stdout: the command holds its lock for the whole run. The terminal, when
        // it is still there, is reached by its own name; after a hangup there is none.
        let _ = ratatui::crossterm::terminal::disable_raw_mode();
        if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            let _ = ratatui::crossterm::execute!(
                tty,
                ratatui::crossterm::terminal::LeaveAlternateScreen,
                ratatui::crossterm::cursor::Show
            );
        }
        // SAFETY: _exit(2) ends the process at once; nothing (no exit handler flushing a
        // stdout whose lock another thread holds) runs after it.
        unsafe { libc::_exit(0) }
    })
    .map_err(|e| anyhow::anyhow!("cannot handle SIGINT/SIGTERM/SIGHUP: {e}"))
}

fn ui(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    rx: &Receiver<Update>,
    start_job: impl Fn(Job),
    color: bool,
) -> anyhow::Result<()> {
    let mut dirty = true;
    loop {
        if dirty {
            let frame = app.frame();
            terminal.draw(|f| render::top::draw(&frame, color, f.area(), f.buffer_mut()))?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(200))? {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    match input(k).map(|i| app.key(i)) {
                        Some(Action::Quit) => return Ok(()),
                        Some(Action::Run(job)) => start_job(job),
                        _ => {}
                    }
                    dirty = true;
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        while let Ok(u) = rx.try_recv() {
            app.update(u);
            dirty = true;
        }
    }
}

fn input(k: KeyEvent) -> Option<Input> {
    let chord = k
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
    Some(match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Input::Interrupt,
        // Ctrl-S is not `s`: chords other than Ctrl-C do nothing.
        KeyCode::Char(_) if chord => return None,
        KeyCode::Char(c) => Input::Char(c),
        KeyCode::Up => Input::Up,
        KeyCode::Down => Input::Down,
        KeyCode::PageUp => Input::PageUp,
        KeyCode::PageDown => Input::PageDown,
        KeyCode::Enter => Input::Enter,
        KeyCode::Esc => Input::Esc,
        KeyCode::Backspace => Input::Backspace,
        _ => return None,
    })
}
