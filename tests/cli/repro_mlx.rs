//! `mlsdiag repro --model DIR`: campaigns through the real reference MLX loop, in real
//! `mlsdiag-runner` children, on tiny Qwen2 checkpoints that the runner writes itself (random
//! weights, a byte-level BPE tokenizer built in code). The hidden `--inject-hang RUN:K` makes
//! the runner block forever in a futex wait after K tokens, so the watchdog, the snapshot and
//! the kill (or `--keep-hung`) are exercised on a process that is really stuck.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{json, run, stderr, stdout, wait_until, write};

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mlsdiag-runner"))
}

/// A tiny checkpoint in `dir/name`, written by `mlsdiag-runner tiny`.
fn tiny(dir: &Path, name: &str, extra: &[&str]) -> String {
    let path = dir.join(name);
    let o = Command::new(runner())
        .arg("tiny")
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    path.display().to_string()
}

fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0); /proc says whether it has really run its course.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Ends a process the test left running, even when the test fails.
struct KillOnDrop(Vec<u32>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: plain kill(2) on a PID this test was told about.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn repro(args: &[&str]) -> Output {
    let mut all = vec!["repro", "--json"];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn a_campaign_catches_the_injected_hang_snapshots_the_runner_and_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "m", &[]);
    let prompt = dir.path().join("prompt.txt");
    write(&prompt, "Tell me about the weather.");
    let out = dir.path().join("out");
    let o = repro(&[
        "--model",
        &model,
        "--prompt",
        prompt.to_str().unwrap(),
        "-n",
        "6",
        "--max-tokens",
        "12",
        "--stall",
        "3s",
        "--inject-hang",
        "2:4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["runs"], 6);
    assert_eq!(r["hangs"], 1, "{r:#}");
    assert_eq!(r["completed"], 5, "{r:#}");
    assert_eq!(r["errors"], 0, "{r:#}");
    // 5 full runs of 12 tokens and 4 before the hang.
    assert_eq!(r["tokens"], 64, "{r:#}");
    let h = &r["hang_details"][0];
    assert_eq!(
        (h["run"].as_u64(), h["after_tokens"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(h["kept_alive"], false);
    let pid = h["runner_pid"].as_u64().unwrap() as u32;
    // The snapshot was taken of that runner while it hung, and says so with the evidence.
    let snap: Value = serde_json::from_str(
        &std::fs::read_to_string(h["snapshots"][0].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(snap["worker"]["pid"], pid, "{snap:#}");
    assert_eq!(snap["worker"]["verdict"], "hung", "{snap:#}");
    let findings = snap["worker"]["findings"].to_string();
    assert!(findings.contains("run-2"), "{findings}");
    assert!(
        snap["threads"].as_array().is_some_and(|t| !t.is_empty()),
        "{snap:#}"
    );
    // Then it was killed, and the campaign went on with a fresh runner.
    wait_until(Duration::from_secs(10), "the hung runner to end", || {
        !alive(pid)
    });
    let log = std::fs::read_to_string(out.join("runs.log")).unwrap();
    assert_eq!(log.matches("Chat completion request:").count(), 6, "{log}");
    assert!(
        log.contains(&format!("Worker timeout after 3s pid={pid} id=run-2")),
        "{log}"
    );
    let pids: std::collections::BTreeSet<&str> = log
        .lines()
        .filter_map(|l| l.split("pid=").nth(1))
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "one runner before the hang, a new one after: {log}"
    );
}

#[test]
fn keep_hung_leaves_the_runner_alive_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "m", &["--bits", "4", "--group-size", "32"]);
    let requests = dir.path().join("req.jsonl");
    write(
        &requests,
        concat!(
            r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0.7,"top_p":0.9}"#,
            "\n",
            r#"{"prompt":"the weather","max_tokens":6}"#,
            "\n"
        ),
    );
    let out = dir.path().join("out");
    let o = repro(&[
        "--model",
        &model,
        "--requests",
        requests.to_str().unwrap(),
        "-n",
        "4",
        "--parallel",
        "2",
        "--stall",
        "3s",
        "--inject-hang",
        "1:2",
        "--keep-hung",
        "--out",
        out.to_str().unwrap(),
    ]);
    let r = json(&o);
    let pid = r["hang_details"][0]["runner_pid"].as_u64().unwrap_or(0) as u32;
    let _guard = KillOnDrop(vec![pid]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        (r["hangs"].as_u64(), r["completed"].as_u64()),
        (Some(1), Some(3)),
        "{r:#}"
    );
    assert_eq!(r["hang_details"][0]["kept_alive"], true);
    // Still there after mlsdiag exited, blocked (state S) mid-generation.
    assert!(alive(pid), "runner {pid} should have been kept");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(state, "S", "{stat}");
    // The text report tells the operator how to end it.
    let text = run(&[
        "repro",
        "--model",
        &model,
        "--requests",
        requests.to_str().unwrap(),
        "-n",
        "1",
        "--stall",
        "3s",
        "--inject-hang",
        "0:1",
        "--keep-hung",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = stdout(&text);
    let line = t
        .lines()
        .find(|l| l.contains("left alive"))
        .unwrap_or_else(|| panic!("{t}"));
    let second: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let _guard2 = KillOnDrop(vec![second]);
    assert!(line.contains(&format!("kill {second}")), "{line}");
    assert!(alive(second));
}

#[test]
fn the_runner_gives_the_same_tokens_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "m", &["--bits", "8"]);
    let serve = |lines: &str| -> Vec<Value> {
        let mut child = Command::new(runner())
            .args(["serve", "--model", &model])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        // stdin is closed: the runner answers every line, then exits.
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let req = |run: u64, seed: u64| {
        format!(
            r#"{{"run":{run},"messages":[{{"role":"user","content":"Say something"}}],"max_tokens":16,"temperature":1.0,"top_p":0.95,"seed":{seed}}}"#
        ) + "\n"
    };
    let a = serve(&(req(0, 5) + &req(1, 5) + &req(2, 6)));
    let b = serve(&req(0, 5));
    assert_eq!(a[0]["event"], "ready");
    let done: Vec<&Value> = a.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 3, "{a:?}");
    let tokens = |events: &[Value], run: u64| -> Vec<u64> {
        // Token events come between the request's start and its done event.
        let mut out = Vec::new();
        let mut current = 0;
        for e in events {
            match e["event"].as_str() {
                Some("token") if current == run => out.push(e["id"].as_u64().unwrap()),
                Some("done") => current += 1,
                _ => {}
            }
        }
        out
    };
    assert_eq!(
        tokens(&a, 0).len(),
        done[0]["tokens"].as_u64().unwrap() as usize
    );
    assert_eq!(tokens(&a, 0), tokens(&a, 1), "same seed in one process");
    assert_eq!(tokens(&a, 0), tokens(&b, 0), "same seed in another process");
    assert_eq!(done[0]["text"], done[1]["text"]);
    assert_ne!(tokens(&a, 0), tokens(&a, 2), "another seed, other tokens");
}

#[test]
fn a_checkpoint_that_cannot_load_is_named_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "m", &[]);
    std::fs::remove_file(Path::new(&model).join("tokenizer.json")).unwrap();
    let prompt = dir.path().join("p.txt");
    write(&prompt, "hello");
    let o = run(&[
        "repro",
        "--model",
        &model,
        "--prompt",
        prompt.to_str().unwrap(),
        "-n",
        "3",
    ]);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(e.contains("tokenizer.json"), "{e}");
    // A checkpoint of another architecture.
    let other = tiny(dir.path(), "llama", &[]);
    let cfg = Path::new(&other).join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("qwen2", "llama");
    std::fs::write(&cfg, text).unwrap();
    let o = run(&[
        "repro",
        "--model",
        &other,
        "--prompt",
        prompt.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("llama"), "{}", stderr(&o));
}

#[test]
fn a_request_with_a_bad_field_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "m", &[]);
    let requests = dir.path().join("req.jsonl");
    write(
        &requests,
        "{\"prompt\":\"a\"}\n{\"prompt\":\"b\",\"temperature\":\"hot\"}\n",
    );
    let o = run(&[
        "repro",
        "--model",
        &model,
        "--requests",
        requests.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(
        e.contains("req.jsonl") && e.contains("request 2") && e.contains("temperature"),
        "{e}"
    );
}
