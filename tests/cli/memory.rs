//! The leak rule on real processes of the four memory shapes (tests/workers/memory_shapes.py),
//! judged while two other processes keep both cores busy: flat, sawtooth and generating stay
//! healthy, the stepwise leak is flagged, and a window too short to judge says so.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{Background, json, root, run, write};

const SHAPES: [&str; 4] = ["flat", "sawtooth", "generating", "leak"];

fn shape(name: &str, tag: &str) -> Background {
    let mut cmd = Command::new("python3");
    cmd.args([&root("tests/workers/memory_shapes.py"), name, tag])
        .env("MALLOC_MMAP_THRESHOLD_", "65536");
    let b = Background::spawn(cmd);
    b.line(Duration::from_secs(30), |l| l == "ready");
    b
}

fn hog() -> Background {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "while True: pass"]).stdin(Stdio::null());
    Background::spawn(cmd)
}

#[test]
fn flat_sawtooth_and_generating_are_healthy_and_a_stepwise_leak_is_not_on_a_busy_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("shapes-{}", std::process::id());
    let _hogs = [hog(), hog()];
    let procs: Vec<(&str, Background)> = SHAPES.iter().map(|s| (*s, shape(s, &tag))).collect();
    let reg = tmp.path().join("registry.json");
    let entries: Vec<String> = procs
        .iter()
        .map(|(s, b)| format!(r#"{{"pid":{},"name":"shape-{s}"}}"#, b.child.id()))
        .collect();
    write(&reg, &format!("[{}]", entries.join(",")));
    let pattern = format!("memory_shapes.py [a-z]+ {tag}");
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--json",
            "--pattern",
            &pattern,
            "--registry",
            reg.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        json(&run(&args))
    };
    let worker = |r: &serde_json::Value, name: &str| {
        r["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == format!("shape-{name}"))
            .unwrap_or_else(|| panic!("no shape-{name} in {r:#}"))
            .clone()
    };

    // Twenty seconds of readings; the rule's span minimum lowered to fit in a test (the rule,
    // its 32 MiB of growth and its 10 MiB/min are the defaults).
    let r = check(&["--window", "20s", "--leak-min-span", "15s"]);
    for name in ["flat", "sawtooth", "generating"] {
        let w = worker(&r, name);
        assert_eq!(w["verdict"], "healthy", "{name}: {w:#}");
        let notes = w["notes"].to_string();
        assert!(
            notes.contains("baseline (lowest reading of each of"),
            "{name}: {notes}"
        );
    }
    let leak = worker(&r, "leak");
    assert_eq!(leak["verdict"], "leaking", "{leak:#}");
    let ev = leak["findings"][0]["evidence"][0].as_str().unwrap();
    assert!(
        ev.contains("Theil–Sen") && ev.contains("no single step"),
        "{ev}"
    );

    // The default rule on the default window: too short to call anything a leak, and it says so.
    let r = check(&[]);
    let leak = worker(&r, "leak");
    assert_eq!(leak["verdict"], "healthy", "{leak:#}");
    assert!(
        leak["notes"]
            .to_string()
            .contains("too short to judge a leak (needs 1m00s"),
        "{leak:#}"
    );
}
