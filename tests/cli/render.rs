//! Every renderer's output, pinned as a snapshot (insta): the recorded seed incident
//! (fixtures/macos/seed-incident.json, with its registry and log) replayed through the real
//! binary with the width, colour and time zone fixed: output to a pipe (tables never wrap),
//! `--color never`, `TZ=UTC`. A change to what an operator reads shows up here as a diff;
//! `cargo insta review` (or `INSTA_UPDATE=always`) accepts an intended one.

use std::path::Path;
use std::process::Command;

use crate::util::{bin, root};

pub const SEED: &str = "fixtures/macos/seed-incident.json";
pub const REGISTRY: &str = "fixtures/seed/worker_registry.json";
pub const LOG: &str = "fixtures/seed/mls.log";

/// stdout of mlsdiag replaying the seed recording, and its exit code.
pub fn replay(args: &[&str]) -> (String, Option<i32>) {
    let out = Command::new(bin())
        .args(["--color", "never", "--fixture"])
        .arg(root(SEED))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("NO_COLOR")
        .current_dir(root("."))
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty() || out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8(out.stdout).unwrap(), out.status.code())
}

/// The test's temporary directory, the version, and the host a snapshot was taken on vary by
/// run and machine: shown as tokens.
fn pinned(dir: &Path, text: &str) -> String {
    let host = regex::Regex::new(r"(Host: |\*\*Machine\*\* \| )\S+ \(\w+\)").unwrap();
    let text = text
        .replace(&dir.display().to_string(), "[DIR]")
        .replace(env!("CARGO_PKG_VERSION"), "[VERSION]");
    let text = host.replace_all(&text, "${1}[HOST] ([OS])").into_owned();
    // The postmortem's summary names the machine once more.
    let on = regex::Regex::new(r"\) on \S+ stopped").unwrap();
    on.replace_all(&text, ") on [HOST] stopped").into_owned()
}

#[test]
fn check_threads_fds_stacks_mem_registry() {
    let (check, code) = replay(&[
        "check",
        "--registry",
        REGISTRY,
        "--log",
        LOG,
        "--window",
        "0.2s",
    ]);
    assert_eq!(code, Some(2));
    snap!("check", check);
    for (name, args) in [
        ("threads", vec!["threads", "49387"]),
        ("fds", vec!["fds", "49387"]),
        ("stacks", vec!["stacks", "49387"]),
        ("mem", vec!["mem"]),
        ("registry", vec!["registry", "--registry", REGISTRY]),
    ] {
        let (text, _) = replay(&args);
        snap!(name, text);
    }
}

#[test]
fn logs() {
    let (text, code) = replay(&["logs", LOG]);
    assert_eq!(code, Some(0));
    snap!("logs", text);
}

#[test]
fn snapshot_history_postmortem() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    let snaps_arg = snaps.to_str().unwrap();
    let common = ["--registry", REGISTRY, "--log", LOG, "--window", "0.2s"];
    let mut args = vec!["snapshot", "--dir", snaps_arg];
    args.extend(common);
    let (saved, _) = replay(&args);
    snap!("snapshot", pinned(dir.path(), &saved));
    let txt = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "txt"))
        .unwrap();
    let text = std::fs::read_to_string(&txt).unwrap();
    snap!("snapshot-text", pinned(dir.path(), &text));
    let (history, _) = replay(&["history", "--dir", snaps_arg]);
    snap!("history", pinned(dir.path(), &history));
    let (md, code) = replay(&["postmortem", snaps_arg, "--log", LOG]);
    assert_eq!(code, Some(0));
    snap!("postmortem", pinned(dir.path(), &md));
}

#[test]
fn watch_lines_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = replay(&[
        "watch",
        "--rounds",
        "2",
        "--interval",
        "0.2s",
        "--no-snapshot",
        "--registry",
        REGISTRY,
        "--log",
        LOG,
        "--window",
        "0.1s",
    ]);
    snap!("watch", lines);
    let textfile = dir.path().to_str().unwrap();
    replay(&[
        "check",
        "--registry",
        REGISTRY,
        "--log",
        LOG,
        "--window",
        "0.2s",
        "--textfile",
        textfile,
    ]);
    let prom = std::fs::read_to_string(dir.path().join("mlsdiag.prom")).unwrap();
    // The check's own duration is the one figure that varies run to run.
    let prom: Vec<String> = prom
        .lines()
        .map(
            |l| match l.strip_prefix("mlsdiag_scrape_duration_seconds ") {
                Some(v) => {
                    assert!(v.parse::<f64>().is_ok_and(|s| s >= 0.2), "{l}");
                    "mlsdiag_scrape_duration_seconds [SECONDS]".to_string()
                }
                None => l.to_string(),
            },
        )
        .collect();
    snap!("metrics", pinned(dir.path(), &prom.join("\n")));
}

#[test]
fn renderers_take_their_width_and_colour_from_the_style() {
    // The library path: the same check report rendered at 80 columns and in colour, without
    // a terminal, from nothing but the style it is given.
    use mlsdiag::diagnose::check::{CheckOptions, check};
    use mlsdiag::render::Style;
    let platform = mlsdiag::platform::fixture::Fixture::load(Path::new(&root(SEED))).unwrap();
    let opts = CheckOptions {
        registry: root(REGISTRY).into(),
        log: Some(root(LOG).into()),
        window: std::time::Duration::from_millis(200),
        ..CheckOptions::default()
    };
    let report = check(&opts, &platform).unwrap();
    let render = |style: Style| {
        let mut out = Vec::new();
        mlsdiag::render::check::check(&report, &style, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let narrow = render(Style {
        color: false,
        width: Some(80),
    });
    let table = |text: &str| -> Vec<String> {
        text.lines()
            .take_while(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert!(
        table(&narrow).iter().all(|l| l.chars().count() <= 80),
        "the table fits 80 columns: {narrow}"
    );
    let plain = render(Style::PLAIN);
    assert!(
        table(&plain).iter().any(|l| l.chars().count() > 80),
        "unwrapped, the table is wider: {plain}"
    );
    let coloured = render(Style {
        color: true,
        width: None,
    });
    assert!(coloured.contains("\x1b["), "{coloured:?}");
    assert_eq!(
        strip_ansi(&coloured),
        plain,
        "colour changes nothing but the escapes"
    );
}

fn strip_ansi(s: &str) -> String {
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(s, "")
        .into_owned()
}
