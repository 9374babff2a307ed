//! `mlsdiag top`: frames drawn by ratatui's test backend from the recorded seed incident
//! (pinned with insta), the view's keys on that recording, `--once` on a pipe, and the real
//! binary in a real terminal (tmux) on the demo's misbehaving workers: it finds the hung
//! worker's row, opens its stacks, survives a resize, signals only on a confirmed `K`, and
//! quits leaving the terminal as it was.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mlsdiag::diagnose::check::CheckOptions;
use mlsdiag::model::{PaneView, TopFrame, TopRow, Verdict};
use mlsdiag::platform::Platform;
use mlsdiag::platform::fixture::Fixture;
use mlsdiag::top::{Action, App, Input, Job, JobOutput, RoundView, TopOptions, Update, run_job};
use mlsdiag::watch::{WatchOptions, Watcher};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use crate::render::{LOG, REGISTRY, SEED, replay};
use crate::util::{bin, root};

fn seed_options() -> TopOptions {
    let check = CheckOptions {
        registry: root(REGISTRY).into(),
        log: Some(root(LOG).into()),
        window: Duration::from_millis(200),
        ..CheckOptions::default()
    };
    TopOptions {
        watch: WatchOptions {
            check,
            snapshot_dir: None,
            ..WatchOptions::default()
        },
        interval: Duration::from_secs(2),
        snapshot_dir: std::env::temp_dir(),
        threads_window: Duration::from_millis(100),
    }
}

/// The view after one round on `fixture`.
fn app_on(fixture: &Fixture, opts: &TopOptions) -> App {
    let mut app = App::new("studio-1".into(), opts.interval);
    let mut w = Watcher::new(opts.watch.clone());
    let round = w.round(fixture).unwrap();
    app.update(Update::Round(Box::new(RoundView::new(
        round,
        fixture.system_memory().ok(),
    ))));
    app
}

fn seed() -> Fixture {
    Fixture::load(Path::new(&root(SEED))).unwrap()
}

fn draw(frame: &TopFrame, color: bool, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| mlsdiag::render::top::draw(frame, color, f.area(), f.buffer_mut()))
        .unwrap();
    t
}

fn shown(t: &Terminal<TestBackend>) -> String {
    t.backend().to_string()
}

#[test]
fn seed_incident_frames() {
    let opts = seed_options();
    let mut app = app_on(&seed(), &opts);
    let frame = app.frame();
    assert_eq!(frame.exit_code, 2, "{frame:?}");
    let hung = frame.rows.iter().find_map(|r| match r {
        TopRow::Worker(w) if w.pid == 49387 => Some(w.clone()),
        _ => None,
    });
    let hung = hung.expect("the seed's worker has a row");
    assert_eq!(hung.verdict, Verdict::Hung);
    assert!(
        hung.oldest_in_flight_secs.unwrap() > 7.0 * 3600.0,
        "{hung:?}"
    );
    // The recording's pane holds the evidence as `check` prints it.
    assert!(frame.pane.title.contains("PID 49387"), "{:?}", frame.pane);
    assert!(
        frame.pane.lines.iter().any(|l| l.contains("[hung]")),
        "{:?}",
        frame.pane
    );
    snap!("top-seed-120x30", shown(&draw(&frame, false, 120, 30)));
    // The smallest terminal the view is made for.
    let small = shown(&draw(&frame, false, 80, 24));
    assert!(small.contains("HUNG") && small.contains("q"), "{small}");
    snap!("top-seed-80x24", small);
    // The stacks pane: the job's own renderer, as `mlsdiag stacks 49387` prints it.
    assert_eq!(app.key(Input::Char('s')), Action::Run(Job::Stacks(49387)));
    assert!(app.frame().pane.lines[0].contains("collecting"));
    let out = run_job(&Job::Stacks(49387), &opts, &seed());
    app.update(Update::Done(Job::Stacks(49387), out));
    let stacks = app.frame();
    assert!(stacks.pane.title.starts_with("stacks: PID 49387"));
    snap!(
        "top-seed-stacks-100x40",
        shown(&draw(&stacks, false, 100, 40))
    );
    // Esc goes back to the evidence.
    app.key(Input::Esc);
    assert!(app.frame().pane.title.starts_with("evidence"));
}

#[test]
fn colour_only_when_asked() {
    let frame = app_on(&seed(), &seed_options()).frame();
    let cell_of = |t: &Terminal<TestBackend>, text: &str| {
        let buf = t.backend().buffer();
        let area = buf.area;
        for y in 0..area.height {
            let line: String = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
            if let Some(x) = line.find(text) {
                let col = line[..x].chars().count() as u16;
                return buf[(col, y)].clone();
            }
        }
        panic!("{text} not drawn");
    };
    let colour = draw(&frame, true, 120, 30);
    assert_eq!(cell_of(&colour, "HUNG").fg, Color::Red);
    let plain = draw(&frame, false, 120, 30);
    assert_eq!(cell_of(&plain, "HUNG").fg, Color::Reset);
    // `--once` on a pipe: no escapes with --color never, escapes with --color always.
    for (choice, escapes) in [("never", false), ("always", true)] {
        let out = once(&["--color", choice]);
        assert_eq!(out.status.code(), Some(2));
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.contains('\x1b'), escapes, "--color {choice}: {text}");
        assert!(text.contains("HUNG"), "{text}");
    }
}

fn once(extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(extra)
        .arg("--fixture")
        .arg(root(SEED))
        .args([
            "top",
            "--once",
            "--registry",
            REGISTRY,
            "--log",
            LOG,
            "--window",
            "0.2s",
        ])
        .current_dir(root("."))
        .env("COLUMNS", "120")
        .env("TZ", "UTC")
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

#[test]
fn once_prints_one_frame_with_checks_exit_code() {
    let out = once(&["--color", "never"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let host = regex::Regex::new(r"mlsdiag top · \S+ ·").unwrap();
    snap!("top-once", host.replace(&text, "mlsdiag top · [HOST] ·"));
    // The same exit code as check on the same recording.
    let (_, check) = replay(&[
        "check",
        "--registry",
        REGISTRY,
        "--log",
        LOG,
        "--window",
        "0.2s",
    ]);
    assert_eq!(check, out.status.code());
    // Interactive top refuses a pipe, saying what to do instead.
    let piped = Command::new(bin())
        .args(["top", "--registry", REGISTRY])
        .current_dir(root("."))
        .output()
        .unwrap();
    assert_ne!(piped.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&piped.stderr).contains("--once"));
}

#[test]
fn keys_filter_confirm_and_gone_workers() {
    let opts = seed_options();
    let mut app = app_on(&seed(), &opts);
    // `/` filters by name, PID or verdict; a filter nothing matches empties the tree.
    app.key(Input::Char('/'));
    for c in "nothing-like-it".chars() {
        app.key(Input::Char(c));
    }
    let f = app.frame();
    assert!(f.editing_filter && f.selected.is_none());
    assert!(!f.rows.iter().any(|r| matches!(r, TopRow::Worker(_))));
    app.key(Input::Esc);
    app.key(Input::Char('/'));
    for c in "hung".chars() {
        app.key(Input::Char(c));
    }
    app.key(Input::Enter);
    assert!(app.frame().selected.is_some());
    // `K` asks first; anything but `y` sends nothing.
    assert_eq!(app.key(Input::Char('K')), Action::None);
    assert!(
        app.frame()
            .message
            .unwrap()
            .contains("SIGTERM to PID 49387 (mlx-server-v3-1: ")
    );
    assert_eq!(app.key(Input::Char('n')), Action::None);
    assert!(app.frame().message.unwrap().contains("nothing was sent"));
    app.key(Input::Char('K'));
    let Action::Run(job @ Job::Terminate(_)) = app.key(Input::Char('y')) else {
        panic!("y after K terminates");
    };
    // On a recording nothing can be signalled, and the view says so.
    let JobOutput::Message(m) = run_job(&job, &opts, &seed()) else {
        panic!("a message");
    };
    assert!(m.contains("not sent") && m.contains("recording"), "{m}");
    // The worker vanishes: the next round has no process table entry for it.
    let mut gone =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(root(SEED)).unwrap())
            .unwrap();
    gone["processes"] = serde_json::json!([]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.json");
    std::fs::write(&path, gone.to_string()).unwrap();
    let empty = Fixture::load(&path).unwrap();
    let mut opts2 = seed_options();
    opts2.watch.check.registry = dir.path().join("none.json");
    let mut w = Watcher::new(opts2.watch.clone());
    let round = w.round(&empty).unwrap();
    app.update(Update::Round(Box::new(RoundView::new(round, None))));
    let f = app.frame();
    let row = f
        .rows
        .iter()
        .find_map(|r| match r {
            TopRow::Worker(w) if w.pid == 49387 => Some(w),
            _ => None,
        })
        .expect("the gone worker is still listed");
    assert!(row.gone, "{row:?}");
    assert!(f.pane.lines[0].contains("no longer found"), "{:?}", f.pane);
    assert_eq!(
        app.key(Input::Char('s')),
        Action::None,
        "no stacks of a gone process"
    );
    let _: &PaneView = &f.pane;
}

/// Alive and not a zombie waiting for its parent.
#[cfg(target_os = "linux")]
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// tmux on a private socket, ended on drop.
#[cfg(target_os = "linux")]
struct Tmux {
    socket: std::path::PathBuf,
}

#[cfg(target_os = "linux")]
impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }
    /// A new session "top" of `w`x`h` running `cmd` under sh.
    fn session(&self, w: &str, h: &str, cmd: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            w,
            "-y",
            h,
            "-e",
            "TERM=xterm-256color",
            cmd,
        ]);
        assert!(out.status.success(), "{out:?}");
        // The server stays up when its last session is killed (Drop ends it): by default it
        // exits then, and a `new-session` right after can reach it while it shuts down
        // ("server exited unexpectedly").
        let out = self.cmd(&["set-option", "-s", "exit-empty", "off"]);
        assert!(out.status.success(), "{out:?}");
    }
    /// "0" once the program in the pane has left the alternate screen.
    fn alternate_on(&self) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into()
    }
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let mut last = String::new();
        let found = (0..300).any(|_| {
            last = self.screen();
            cond(&last) || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(found, "{what}; the screen:\n{last}");
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Linux: tmux is installed by scripts/deps there (the macOS job has no tmux), and `running`
/// reads /proc.
#[cfg(target_os = "linux")]
#[test]
fn top_in_a_real_terminal_on_the_demo() {
    use crate::util::{Sim, wait_until};
    let sim = Sim::start();
    let hung = sim.pid("hung");
    let idle = sim.pid("idle");
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux {
        socket: dir.path().join("tmux.sock"),
    };
    let top = format!(
        "{} top --pattern '{}' --registry '{}' --log '{}' --hung-after 1s --leak-min-span 500ms \
         --leak-min-growth 8 --interval 1s --window 0.5s --dir '{}'; echo TOP-EXIT=$?; sleep 600",
        bin().display(),
        sim.pattern(),
        sim.registry(),
        sim.log(),
        dir.path().join("snaps").display(),
    );
    tmux.session("120", "40", &top);
    let hung_row = move |s: &str| {
        s.lines()
            .any(|l| l.contains(&hung.to_string()) && l.contains("HUNG"))
    };
    tmux.wait_for("the hung worker's row", hung_row);
    // The orphan stands apart, under init or the subreaper that adopted it.
    let orphan = sim.pid("orphan").to_string();
    tmux.wait_for("the orphan under its adopter", |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines
            .iter()
            .position(|l| l.contains(": orphans"))
            .is_some_and(|i| {
                lines
                    .get(i + 1)
                    .is_some_and(|l| l.contains(&orphan) && l.contains("ORPHAN"))
            })
    });
    // Select it with the filter, then open its stacks in the pane.
    tmux.keys(&["/", &hung.to_string(), "Enter"]);
    tmux.wait_for("only the hung worker listed", |s| {
        !s.contains(&idle.to_string()) && hung_row(s)
    });
    tmux.keys(&["s"]);
    let title = format!("stacks: PID {hung}");
    tmux.wait_for("the stacks pane", |s| {
        s.contains(&title) && !s.contains("collecting stacks") && s.contains("TID")
    });
    // A smaller terminal still shows the row and the help line.
    tmux.cmd(&["resize-window", "-t", "top", "-x", "80", "-y", "24"]);
    tmux.wait_for("the frame redrawn at 80x24", |s| {
        hung_row(s)
            && s.lines().count() <= 24
            && s.contains("q")
            && s.lines().all(|l| l.chars().count() <= 80)
    });
    // K on the idle worker: cancelled first, then confirmed; the same process is signalled.
    // Esc on its own: an Esc followed at once by a key reads as Alt+key, which does nothing.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the evidence pane again", |s| {
        s.contains(&format!("evidence: PID {hung}"))
    });
    tmux.keys(&["/", &idle.to_string(), "Enter"]);
    tmux.wait_for("only the idle worker listed", |s| {
        s.contains(&idle.to_string()) && !hung_row(s)
    });
    tmux.keys(&["K"]);
    tmux.wait_for("the question", |s| {
        s.contains(&format!("SIGTERM to PID {idle} ("))
    });
    tmux.keys(&["n"]);
    tmux.wait_for("nothing sent", |s| s.contains("nothing was sent"));
    assert!(running(idle));
    tmux.keys(&["K"]);
    tmux.keys(&["y"]);
    tmux.wait_for("SIGTERM sent", |s| {
        s.contains(&format!("sent SIGTERM to PID {idle}"))
    });
    wait_until(Duration::from_secs(10), "the idle worker to exit", || {
        !running(idle)
    });
    tmux.wait_for("the idle worker shown as gone", |s| {
        s.lines()
            .any(|l| l.contains(&idle.to_string()) && l.contains("gone"))
    });
    tmux.keys(&["q"]);
    tmux.wait_for("top to exit 0", |s| s.contains("TOP-EXIT=0"));
    assert_eq!(tmux.alternate_on(), "0", "the alternate screen is left");
    // Ctrl-C quits the same way, from a fresh start.
    tmux.cmd(&["kill-session", "-t", "top"]);
    tmux.session("100", "30", &top);
    tmux.wait_for("the first round", |s| s.contains("round 1"));
    tmux.keys(&["C-c"]);
    tmux.wait_for("top to exit 0 on Ctrl-C", |s| s.contains("TOP-EXIT=0"));
    assert_eq!(tmux.alternate_on(), "0");
    // The terminal goes away under it (an ssh session dropped): SIGHUP ends it, it does not
    // spin on the closed terminal.
    tmux.cmd(&["kill-session", "-t", "top"]);
    let exec = format!("exec {}", top.split("; echo").next().unwrap());
    tmux.session("100", "30", &exec);
    tmux.wait_for("the first round", |s| s.contains("round 1"));
    let pane = tmux.cmd(&["display-message", "-p", "-t", "top", "#{pane_pid}"]);
    let pid: u32 = String::from_utf8_lossy(&pane.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(running(pid));
    tmux.cmd(&["kill-session", "-t", "top"]);
    let gone = (0..100).any(|_| {
        !running(pid) || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    if !gone {
        // SAFETY: the top this test started; it must not outlive the test.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(gone, "top outlived its terminal");
}
