//! Verdicts: healthy, hung, crashed, orphan, leaking (or unknown), each with its evidence.
//!
//! This is the seed's decision tree made strict. An idle worker also sleeps at 0% CPU, so "hung"
//! needs proof of work in flight without progress: a request logged and never finished, a
//! connection whose request got no response, or an unanswered `--probe`, older than
//! `--hung-after`, while CPU time did not advance and no thread ran. A registry PID is only
//! trusted after its start time and command line are compared. Pure logic over recorded
//! readings, so it is tested on any OS, including on macOS data recorded as fixtures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;

use super::rules::{self, Judging};
use crate::diagnose::leak;
use crate::logs::WorkerLog;
use crate::model::RegistryEntry;
use crate::model::{Activity, Finding, Verdict};
use crate::sample::Series;

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub hung_after: Duration,
    pub leak: leak::Rule,
    /// CPU% over the window at or below which the process counts as making no progress.
    pub progress_cpu_percent: f64,
    /// Tolerance when comparing a process start time with the registry's `spawned_at`.
    pub spawn_slack: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            hung_after: Duration::from_secs(300),
            leak: leak::Rule::DEFAULT,
            progress_cpu_percent: 1.0,
            spawn_slack: Duration::from_secs(5),
        }
    }
}

/// What the registry tells about the orchestrator (the orphan rule's evidence).
#[derive(Debug, Clone)]
pub enum RegistryView<'a> {
    /// Read: it lists `entries` workers, and a live process whose command line matches
    /// `lists` (`--pattern`, or MLS's) should be among them.
    Loaded {
        path: &'a str,
        entries: usize,
        lists: &'a Regex,
    },
    /// No registry, so no orchestrator (none at the default path, or `--no-registry`): the
    /// workers are standalone, judged on their own evidence.
    Absent { why: &'a str },
    /// A registry was named and cannot be read: whether a worker is an orphan is unknown.
    Unavailable { why: &'a str },
}

pub struct Observation<'a> {
    pub series: &'a Series,
    pub entry: Option<&'a RegistryEntry>,
    pub registry: RegistryView<'a>,
    pub pattern: &'a Regex,
    /// The worker's share of the log; `None` when no log was given.
    pub log: Option<&'a WorkerLog>,
    /// Name and pid of the parent, when it could be read.
    pub parent: Option<(u32, String)>,
    /// When the parent started, when it could be read: a parent younger than the worker
    /// adopted it.
    pub parent_started: Option<DateTime<Utc>>,
    /// The worker's standard output and error that nothing reads any more
    /// ([`crate::platform::Platform::unread_output`]), read where its parent adopted it.
    pub unread_output: Vec<String>,
    pub now: DateTime<Utc>,
    /// The worker's heartbeat file (registry field `heartbeat`) and when it was last touched.
    pub heartbeat: Option<(String, DateTime<Utc>)>,
    /// The worker's token progress over the window (registry field `progress`).
    pub tokens: Option<&'a crate::model::TokenProgress>,
    /// The worker's GPU use over the window (NVML, IORegistry).
    pub gpu: Option<&'a crate::model::GpuUsage>,
    /// The worker's TCP connections from the kernel's socket table, where they were read:
    /// one awaiting its response is work in flight.
    pub connections: Option<&'a crate::model::Connections>,
    /// The `--probe` request to the worker's server, where one was sent.
    pub probe: Option<&'a crate::model::ProbeReport>,
    /// The worker's MLX distributed group and its peers, where it is a rank.
    pub distributed: Option<&'a crate::model::Distributed>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub verdict: Verdict,
    pub activity: Activity,
    pub cpu_percent: Option<f64>,
    pub findings: Vec<Finding>,
    /// Facts that support the verdicts or explain what could not be decided.
    pub notes: Vec<String>,
    /// The hung rule's conditions on the oldest request in flight, each held or not.
    pub hung_rule: Vec<crate::model::Condition>,
}

/// Every rule on one worker's observation: its verdict, activity and evidence.
pub fn assess(o: &Observation, th: &Thresholds) -> Assessment {
    let name = o.entry.and_then(|e| e.name.as_deref());
    let who = name.map_or_else(
        || format!("PID {}", o.series.pid),
        |n| format!("worker {n}"),
    );
    let Some(last) = o.series.last() else {
        return rules::crashed::gone(o, &who);
    };
    let first = o.series.first().unwrap_or(last);
    let parent = o.parent.as_ref().map_or_else(
        || format!("PID {}", last.ppid),
        |(p, n)| format!("PID {p} ({n})"),
    );
    let mut j = Judging::default();
    if rules::crashed::judge(o, th, (first, last), &who, &parent, &mut j) {
        return Assessment {
            verdict: Verdict::Crashed,
            activity: Activity::Gone,
            cpu_percent: o.series.cpu_percent(),
            findings: j.findings,
            notes: j.notes,
            hung_rule: j.conditions,
        };
    }
    rules::orphan::judge(o, last, &parent, &mut j);
    let (activity, cpu_percent) = rules::hung::judge(o, th, last, &who, &mut j);
    rules::leaking::judge(o, th, last, &mut j);
    Assessment {
        verdict: Verdict::worst_of(&j.findings),
        activity,
        cpu_percent,
        findings: j.findings,
        notes: j.notes,
        hung_rule: j.conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InspectError;
    use crate::logs::Analyzer;
    use crate::logs::event::ParseCtx;
    use crate::logs::formats::{Format, Parsed};
    use crate::model::ProcessInfo;
    use chrono::TimeZone;

    fn proc(pid: u32, cpu_ms: u64, rss_mib: u64, state: char, running: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid: 4120,
            uid: 501,
            name: "python3".into(),
            cmdline: vec![
                "python3".into(),
                "-m".into(),
                "mls.worker".into(),
                "mlx-server-v3-1".into(),
            ],
            state,
            start_time: Utc.with_ymd_and_hms(2026, 1, 5, 18, 17, 0).unwrap(),
            cpu_user_ns: cpu_ms * 1_000_000,
            cpu_system_ns: 0,
            rss_bytes: rss_mib * 1024 * 1024,
            vsz_bytes: 444_689_440 * 1024,
            footprint_bytes: None,
            threads: 18,
            threads_running: running,
        }
    }

    fn series(readings: Vec<ProcessInfo>) -> Series {
        Series {
            pid: readings[0].pid,
            readings: readings
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i as f64 * 0.2, p))
                .collect(),
            error: None,
        }
    }

    /// The seed's worker asleep: ten readings, CPU time standing still, no thread running.
    fn idle_series() -> Series {
        series(
            (0..10)
                .map(|_| proc(49387, 302_300, 8190, 'S', 0))
                .collect(),
        )
    }

    /// The same worker spinning: every reading running, CPU at 100 %.
    fn hot_series() -> Series {
        series(
            (0..10)
                .map(|i| proc(49387, 302_300 + i * 200, 8190, 'R', 1))
                .collect(),
        )
    }

    fn entry(pid: u32) -> RegistryEntry {
        RegistryEntry {
            pid,
            name: Some("mlx-server-v3-1".into()),
            model: None,
            spawned_at: Some(Utc.with_ymd_and_hms(2026, 1, 5, 18, 17, 0).unwrap()),
            port: None,
            extra: Default::default(),
        }
    }

    fn seed_log() -> WorkerLog {
        let mut a = Analyzer::new(&[], Duration::from_secs(300), false);
        let mut ctx = ParseCtx::default();
        for l in [
            "2026-01-05T23:12:40Z Chat completion: 412 tokens in 13.6s (30.2 tok/s) worker=mlx-server-v3-1",
            "2026-01-05T23:13:25Z Chat completion request: worker=mlx-server-v3-1 id=req-319 prompt_chars=8489 max_tokens=2000 temperature=0.3",
            "2026-01-05T23:23:25Z Worker timeout after 600s worker=mlx-server-v3-1 id=req-319",
        ] {
            let Parsed::Event(e) = Format::Mls.parse(l.as_bytes(), &mut ctx) else {
                panic!("{l}")
            };
            a.add(&e);
        }
        a.finish()
            .for_worker(Some("mlx-server-v3-1"), 49387, true, None, &|_| false)
    }

    fn observe<'a>(
        s: &'a Series,
        e: Option<&'a RegistryEntry>,
        log: Option<&'a WorkerLog>,
        re: &'a Regex,
    ) -> Observation<'a> {
        Observation {
            series: s,
            entry: e,
            registry: RegistryView::Loaded {
                path: "/tmp/mlx-server/worker_registry.json",
                entries: 1,
                lists: re,
            },
            pattern: re,
            log,
            parent: Some((4120, "python3".into())),
            parent_started: None,
            unread_output: vec![],
            now: Utc.with_ymd_and_hms(2026, 1, 6, 7, 2, 46).unwrap(),
            heartbeat: None,
            tokens: None,
            gpu: None,
            connections: None,
            probe: None,
            distributed: None,
        }
    }

    #[test]
    fn the_seed_incident_is_hung_with_evidence() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = idle_series();
        let e = entry(49387);
        let log = seed_log();
        let a = assess(
            &observe(&s, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Hung);
        assert_eq!(a.activity, Activity::Stalled);
        let ev = a.findings[0].evidence.join("\n");
        assert!(
            ev.contains("request req-319 (8489 chars, max_tokens 2000, temperature 0.3)"),
            "{ev}"
        );
        assert!(ev.contains("in flight for 7h49m"), "{ev}");
        assert!(ev.contains("CPU time advanced 0 ms"), "{ev}");
        assert!(ev.contains("orchestrator timed out"), "{ev}");
    }

    /// A progress record as the check saw it: generating since `since`, last progress
    /// `quiet_secs` before the observation's `now`.
    fn tokens(quiet_secs: i64, window_tokens: u64) -> crate::model::TokenProgress {
        let now = Utc.with_ymd_and_hms(2026, 1, 6, 7, 2, 46).unwrap();
        let since = Utc.with_ymd_and_hms(2026, 1, 5, 23, 13, 25).unwrap();
        let last = now - chrono::Duration::seconds(quiet_secs);
        crate::model::TokenProgress {
            source: "/tmp/mlx-server/progress-49387".into(),
            record: crate::model::TokenRecord {
                pid: 49387,
                created: since,
                tokens: 900,
                last_token: Some(last),
                generating_since: Some(since),
                request_tokens: 120,
                prompt: Some([8192, 8192]),
                last_progress: Some(last),
                generations: 318,
                request: Some("req-319".into()),
                waiting_since: None,
                read_at: now,
            },
            window_tokens: Some(window_tokens),
            tokens_per_sec: Some(window_tokens as f64 / 2.0),
            secs_since_progress: Some(quiet_secs as f64),
        }
    }

    #[test]
    fn spinning_needs_busy_cpu_or_gpu_not_one_running_reading() {
        // A frozen interpreter (its lock held by a native wait): one reading caught a thread
        // running, the CPU at 0.1% over the window, no token for 10 minutes: stalled.
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let mut readings: Vec<ProcessInfo> = (0..10)
            .map(|_| proc(49387, 302_300, 8190, 'S', 0))
            .collect();
        readings[4] = proc(49387, 302_300, 8190, 'R', 1);
        readings[9].cpu_user_ns += 2_000_000;
        let s = series(readings);
        let frozen = tokens(600, 0);
        let mut o = observe(&s, Some(&e), None, &re);
        o.tokens = Some(&frozen);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Hung, Activity::Stalled),
            "{a:#?}"
        );
    }

    #[test]
    fn a_stopped_worker_is_said_stopped_and_one_under_a_debugger_never_hung() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        let stopped = |state| {
            series(
                (0..10)
                    .map(|_| proc(49387, 302_300, 8190, state, 0))
                    .collect(),
            )
        };
        // SIGSTOPped with nothing in flight: not healthy, not hung: unknown, said plainly.
        let t = stopped('T');
        let a = assess(&observe(&t, Some(&e), None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Unknown, "{a:#?}");
        let ev = a.findings[0].evidence.join(" ");
        assert!(
            ev.contains("stopped by a signal") && ev.contains("kill -CONT"),
            "{ev}"
        );
        // SIGSTOPped with the seed's request in flight: hung, and the evidence says why.
        let a = assess(
            &observe(&t, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Hung, "{a:#?}");
        assert!(hung_evidence(&a).contains("stopped by a signal"), "{a:#?}");
        // Held by a debugger: never hung, whatever waits on it.
        let traced = stopped('t');
        let a = assess(
            &observe(&traced, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Unknown, "{a:#?}");
        assert!(!held(&a, "not held by a debugger"), "{a:#?}");
    }

    #[test]
    fn tokens_coming_at_zero_cpu_are_work_and_frozen_tokens_at_full_cpu_a_hang() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        // GPU-bound: the CPU idle, the seed's request 8 h old, but tokens still coming.
        let idle = idle_series();
        let fresh = tokens(1, 12);
        let mut o = observe(&idle, Some(&e), Some(&log), &re);
        o.tokens = Some(&fresh);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working)
        );
        assert!(
            a.notes.iter().any(|n| n.contains("tokens advancing")),
            "{a:#?}"
        );
        // A hot spin: every thread running, CPU at 100 %, no token for 10 minutes.
        let hot = hot_series();
        let frozen = tokens(600, 0);
        let mut o = observe(&hot, Some(&e), Some(&log), &re);
        o.tokens = Some(&frozen);
        let a = assess(&o, &Thresholds::default());
        assert_eq!((a.verdict, a.activity), (Verdict::Hung, Activity::Spinning));
        let ev = a.findings[0].evidence.join("\n");
        assert!(ev.contains("generation of request req-319"), "{ev}");
        assert!(ev.contains("no token or prefill progress for 10m"), "{ev}");
        assert!(ev.contains("spinning"), "{ev}");
    }

    #[test]
    fn a_quiet_record_is_not_a_hang_when_it_waits_on_its_consumer_or_prefills_at_work() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        let idle = idle_series();
        let hot = hot_series();
        // The last token was handed to a consumer that has not asked for the next: it waits
        // on its client. Without a log and with the seed's log (a request in flight for hours)
        // it is never hung: the hung rule's condition "not waiting on its client" fails.
        let mut waiting = tokens(600, 0);
        waiting.record.waiting_since = waiting.record.last_progress;
        let mut o = observe(&idle, Some(&e), None, &re);
        o.tokens = Some(&waiting);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::WaitingOnClient),
            "{a:#?}"
        );
        let said = "waiting on its client, never hung: the token record";
        assert!(a.notes.iter().any(|n| n.contains(said)), "{a:#?}");
        o.log = Some(&log);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::WaitingOnClient),
            "{a:#?}"
        );
        assert!(!held(&a, "not waiting on its client"), "{a:#?}");
        assert!(
            a.notes.iter().any(|n| n.contains("req-319")
                && n.contains(
                    "waits on its client: not hung (did not hold: not waiting on its client)"
                )),
            "{a:#?}"
        );
        // Still in the prefill (no token yet), one long chunk, the CPU at work: the record
        // does not decide, and the CPU says working.
        let mut prefill = tokens(600, 0);
        prefill.record.request_tokens = 0;
        let mut o = observe(&hot, Some(&e), Some(&log), &re);
        o.tokens = Some(&prefill);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working),
            "{a:#?}"
        );
        assert!(
            a.notes.iter().any(|n| n.contains("still in its prefill")),
            "{a:#?}"
        );
        // The same prefill with nothing at work is a hang.
        let mut o = observe(&idle, Some(&e), Some(&log), &re);
        o.tokens = Some(&prefill);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Hung, Activity::Stalled),
            "{a:#?}"
        );
    }

    #[test]
    fn a_busy_gpu_is_work_at_zero_cpu_and_with_frozen_tokens_a_gpu_spin() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        let idle = idle_series();
        let gpu = crate::model::GpuUsage {
            source: "nvml".into(),
            busy_percent: Some(99.0),
            gpu_seconds: None,
            memory_bytes: Some(6 << 30),
            power_watts: None,
            power_limit_watts: None,
            power_shared: false,
        };
        // No token record: the seed's old request, the CPU asleep, the GPU busy: GPU-bound.
        let mut o = observe(&idle, Some(&e), Some(&log), &re);
        o.gpu = Some(&gpu);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working)
        );
        assert!(
            a.notes.iter().any(|n| n.contains("GPU-bound work")),
            "{a:#?}"
        );
        // Tokens frozen for 10 minutes while the GPU stays busy: a GPU spin.
        let frozen = tokens(600, 0);
        o.tokens = Some(&frozen);
        let a = assess(&o, &Thresholds::default());
        assert_eq!((a.verdict, a.activity), (Verdict::Hung, Activity::Spinning));
        let ev = a.findings[0].evidence.join("\n");
        assert!(ev.contains("GPU 99% busy over the window (nvml)"), "{ev}");
        assert!(ev.contains("the GPU spins"), "{ev}");
        // No record, but the board's power: alone on an H100 at 135 W of 700 W, fully busy, is
        // a spin; with the seed's request in flight for hours it is hung (spinning).
        let mut spin = gpu.clone();
        spin.busy_percent = Some(100.0);
        spin.power_watts = Some(135.0);
        spin.power_limit_watts = Some(700.0);
        let mut o = observe(&idle, Some(&e), Some(&log), &re);
        o.gpu = Some(&spin);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Hung, Activity::Spinning),
            "{a:#?}"
        );
        let still = a
            .hung_rule
            .iter()
            .find(|c| c.condition == "GPU still")
            .unwrap();
        assert!(
            still.held && still.fact.contains("near idle power"),
            "{still:?}"
        );
        // The same board at 686 W: real work, healthy.
        let mut work = spin.clone();
        work.power_watts = Some(686.0);
        o.gpu = Some(&work);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working),
            "{a:#?}"
        );
        // At 135 W but shared with another process: its power proves nothing; GPU-bound work.
        let mut shared = spin.clone();
        shared.power_shared = true;
        o.gpu = Some(&shared);
        assert_eq!(assess(&o, &Thresholds::default()).verdict, Verdict::Healthy);
    }

    #[test]
    fn a_progress_line_in_the_log_is_work_at_zero_cpu() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let mut a = Analyzer::new(&[], Duration::from_secs(300), false);
        let mut ctx = ParseCtx::default();
        for l in [
            "2026-01-06T06:50:00Z Chat completion request: worker=mlx-server-v3-1 id=req-400 prompt_chars=100000",
            "2026-01-06T07:02:10Z Prompt processing progress: 14336/25000 worker=mlx-server-v3-1 id=req-400",
        ] {
            let Parsed::Event(ev) = Format::Mls.parse(l.as_bytes(), &mut ctx) else {
                panic!("{l}")
            };
            a.add(&ev);
        }
        let log = a
            .finish()
            .for_worker(Some("mlx-server-v3-1"), 49387, true, None, &|_| false);
        let idle = idle_series();
        let e = entry(49387);
        let a = assess(
            &observe(&idle, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working),
            "{a:#?}"
        );
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("the log shows progress 36s ago")),
            "{a:#?}"
        );
    }

    #[test]
    fn an_old_request_with_cpu_progress_is_working_not_hung() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series(
            (0..10)
                .map(|i| proc(49387, 1000 + i * 190, 8190, 'R', 1))
                .collect(),
        );
        let e = entry(49387);
        let log = seed_log();
        let a = assess(
            &observe(&s, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working)
        );
    }

    #[test]
    fn a_busy_cpu_with_no_connection_at_all_is_busy_not_working() {
        // mlx-lm #1500's shape: an idle server pinning a core. The socket table shows the port
        // it serves and no connection: nothing is a request's.
        let re = Regex::new("mlx_lm").unwrap();
        let hot = hot_series();
        let none = sockets(vec![]);
        let mut o = observe(&hot, None, None, &re);
        o.connections = Some(&none);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Busy),
            "{a:#?}"
        );
        assert!(a.notes.iter().any(|n| n.contains("mlx-lm #1500")), "{a:#?}");
        // A connection at rest may hide a stream between tokens: working.
        let one = sockets(vec![conn("127.0.0.1:50001", 5, 1, 300, 9000)]);
        o.connections = Some(&one);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.activity, Activity::Working, "{a:#?}");
        // The same server asleep with no connection: idle, by the socket table.
        let idle = idle_series();
        let mut o = observe(&idle, None, None, &re);
        o.connections = Some(&none);
        assert_eq!(assess(&o, &Thresholds::default()).activity, Activity::Idle);
    }

    #[test]
    fn unknown_activity_without_evidence_idle_with_it() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series((0..10).map(|_| proc(49387, 5000, 8190, 'S', 0)).collect());
        let e = entry(49387);
        // No log, no socket table, no record: nothing says whether work is in flight.
        let a = assess(&observe(&s, Some(&e), None, &re), &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Unknown)
        );
        // A log that proves work in flight and shows none: idle.
        let mut log = seed_log();
        log.in_flight.clear();
        let a = assess(
            &observe(&s, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!((a.verdict, a.activity), (Verdict::Healthy, Activity::Idle));
        let a = assess(&observe(&s, Some(&e), None, &re), &Thresholds::default());
        assert!(
            a.notes.iter().any(|n| n.contains("no --log")),
            "{:?}",
            a.notes
        );
    }

    #[test]
    fn young_stall_is_not_yet_hung() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series((0..10).map(|_| proc(49387, 5000, 8190, 'S', 0)).collect());
        let e = entry(49387);
        let log = seed_log();
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.now = Utc.with_ymd_and_hms(2026, 1, 5, 23, 14, 0).unwrap();
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Stalled)
        );
    }

    #[test]
    fn crashed_gone_zombie_and_reused() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let gone = Series {
            pid: 49387,
            readings: vec![],
            error: Some(InspectError::Gone { pid: 49387 }),
        };
        let a = assess(&observe(&gone, Some(&e), None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Crashed);
        assert!(a.findings[0].evidence[0].contains("is gone"));

        // Readings, then gone before the window ended: said once, not a crash.
        let mut exited = series(vec![proc(49387, 5, 10, 'S', 0); 3]);
        exited.error = Some(InspectError::Gone { pid: 49387 });
        let a = assess(
            &observe(&exited, Some(&e), None, &re),
            &Thresholds::default(),
        );
        let said = |a: &Assessment| {
            a.notes
                .iter()
                .filter(|n| n.contains("exited during the sampling window"))
                .count()
        };
        assert_eq!(said(&a), 1, "{:?}", a.notes);
        assert_ne!(a.verdict, Verdict::Crashed);

        let z = series(vec![proc(49387, 5, 0, 'Z', 0); 3]);
        let a = assess(&observe(&z, Some(&e), None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Crashed);
        assert!(a.findings[0].evidence[0].contains("zombie"));

        let mut late = proc(49387, 5, 10, 'S', 0);
        late.start_time = Utc.with_ymd_and_hms(2026, 1, 6, 1, 0, 0).unwrap();
        let a = assess(
            &observe(&series(vec![late.clone(); 3]), Some(&e), None, &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Crashed);
        assert!(
            a.findings[0].evidence[0].contains("started 2026-01-0"),
            "{:?}",
            a.findings
        );

        let mut other = proc(49387, 5, 10, 'S', 0);
        other.cmdline = vec!["/usr/sbin/cupsd".into()];
        let a = assess(
            &observe(&series(vec![other; 3]), Some(&e), None, &re),
            &Thresholds::default(),
        );
        assert!(
            a.findings[0].evidence[0].contains("now runs `/usr/sbin/cupsd`"),
            "{:?}",
            a.findings
        );

        // Start within the slack of spawned_at is the same process.
        let mut near = proc(49387, 5, 10, 'S', 0);
        near.start_time = e.spawned_at.unwrap() + chrono::Duration::seconds(2);
        let a = assess(
            &observe(&series(vec![near; 3]), Some(&e), None, &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Healthy);
    }

    #[test]
    fn orphan_and_leak_are_both_reported() {
        let re = Regex::new("mlx-server-v3").unwrap();
        // 20 MiB more at each of 11 readings 12 s apart: +100 MiB/min over two minutes.
        let mut readings: Vec<ProcessInfo> = (0..11)
            .map(|i| proc(777, 100 + i * 20, 500 + i * 20, 'S', 0))
            .collect();
        for p in &mut readings {
            p.ppid = 1;
        }
        let mut s = series(readings);
        for (i, r) in s.readings.iter_mut().enumerate() {
            r.0 = i as f64 * 12.0;
        }
        let mut o = observe(&s, None, None, &re);
        o.parent = Some((1, "systemd".into()));
        let a = assess(&o, &Thresholds::default());
        let verdicts: Vec<Verdict> = a.findings.iter().map(|f| f.verdict).collect();
        assert_eq!(verdicts, [Verdict::Orphan, Verdict::Leaking]);
        assert_eq!(a.verdict, Verdict::Leaking, "most severe of the findings");
        assert!(a.findings[0].evidence[1].contains("orchestrator is gone"));
        assert!(
            a.findings[1].evidence[0].contains("+100.0 MiB/min (Theil–Sen)"),
            "{:?}",
            a.findings[1]
        );
    }

    #[test]
    fn denied_is_unknown_with_the_remedy() {
        let re = Regex::new("x").unwrap();
        let s = Series {
            pid: 5,
            readings: vec![],
            error: Some(InspectError::PermissionDenied {
                pid: 5,
                path: "/proc/5/stat".into(),
                remedy: crate::error::permission_remedy(Some(0)),
            }),
        };
        let a = assess(&observe(&s, None, None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Unknown);
        assert!(a.findings[0].evidence[0].contains("sudo"));
    }

    /// The rule's conditions by name: whether each held.
    fn rule(a: &Assessment) -> Vec<(String, bool)> {
        a.hung_rule
            .iter()
            .map(|c| (c.condition.clone(), c.held))
            .collect()
    }

    fn held(a: &Assessment, name: &str) -> bool {
        a.hung_rule
            .iter()
            .find(|c| c.condition == name)
            .unwrap_or_else(|| panic!("no condition {name}: {:?}", a.hung_rule))
            .held
    }

    fn at(h: u32, m: u32, s: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, h, m, s).unwrap()
    }

    #[test]
    fn every_condition_of_the_hung_rule_is_reported_and_all_must_hold() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        let s = idle_series();
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), at(23, 13, 0, 5)));
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Hung);
        assert_eq!(
            rule(&a),
            [
                "work in flight",
                "older than --hung-after",
                "CPU still",
                "GPU still",
                "no progress in the log",
                "no fresh heartbeat",
                "not waiting on its client"
            ]
            .map(|n| (n.to_string(), true))
        );
        let ev = a.findings[0].evidence.join("\n");
        assert!(ev.contains("hung rule: all 7 conditions held"), "{ev}");
        assert!(
            ev.contains("heartbeat /tmp/w1.beat not touched for 7h49m"),
            "{ev}"
        );
    }

    #[test]
    fn a_stale_heartbeat_never_overrides_busy_cpu_or_a_young_request() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        // The case: idle 10 minutes (no beat), then a request at 100% CPU: healthy.
        let busy = hot_series();
        let mut o = observe(&busy, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), at(23, 3, 0, 5)));
        o.now = at(23, 13, 28, 5);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working),
            "{a:#?}"
        );
        assert!(!held(&a, "older than --hung-after"));
        assert!(!held(&a, "CPU still"));
        assert!(held(&a, "no fresh heartbeat"));
        // Busy CPU alone, the request old and the heartbeat stale for 20 minutes: still working.
        let mut o = observe(&busy, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), o.now - chrono::Duration::minutes(20)));
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Healthy, "{a:#?}");
        assert!(held(&a, "older than --hung-after") && !held(&a, "CPU still"));
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("working, not hung (did not hold: CPU still)")),
            "{:?}",
            a.notes
        );
        // Asleep, the heartbeat stale, but the request is 3 s old: not yet.
        let s = idle_series();
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), at(23, 3, 0, 5)));
        o.now = at(23, 13, 28, 5);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Stalled)
        );
        assert!(!held(&a, "older than --hung-after") && held(&a, "CPU still"));
    }

    #[test]
    fn a_fresh_heartbeat_is_progress() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        // 0% CPU, but the heartbeat is fresh (a long prefill on the GPU): progressing.
        let idle = series((0..10).map(|_| proc(49387, 5000, 8190, 'S', 0)).collect());
        let mut o = observe(&idle, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), o.now - chrono::Duration::seconds(3)));
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working)
        );
        assert!(a.notes.iter().any(|n| n.contains("touched 3s ago")));
        assert!(!held(&a, "no fresh heartbeat"));
    }

    #[test]
    fn times_from_the_future_are_skew_never_progress() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        let s = idle_series();
        // A heartbeat an hour ahead: not fresh, and said to be skew; the hang still shows.
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), o.now + chrono::Duration::hours(1)));
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Hung, "{a:#?}");
        let skew = a
            .findings
            .iter()
            .find(|f| f.verdict == Verdict::Unknown)
            .expect("a skew finding");
        assert!(
            skew.evidence[0].contains("clock skew: heartbeat /tmp/w1.beat")
                && skew.evidence[0].contains("1h00m ahead"),
            "{skew:?}"
        );
        // A log written in a zone an hour ahead: its request starts in the future. Not
        // "in flight for 0s" and healthy: unknown, with the skew said.
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.now = at(22, 13, 40, 5);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Unknown, "{a:#?}");
        assert!(!held(&a, "older than --hung-after"));
        assert!(
            a.findings[0].evidence[0].contains("request req-319"),
            "{a:#?}"
        );
        // Within the slack (a second-stamped line, clocks a little apart): no finding.
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.now = at(23, 13, 22, 5);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Healthy, "{a:#?}");
        assert!(a.findings.is_empty());
    }

    #[test]
    fn a_token_record_from_the_future_decides_nothing() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        let s = idle_series();
        let mut t = tokens(0, 0);
        t.record.last_progress = Some(
            Utc.with_ymd_and_hms(2026, 1, 6, 8, 2, 46).unwrap(), // an hour after `now`
        );
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.tokens = Some(&t);
        let a = assess(&o, &Thresholds::default());
        // The record does not call it working; the log rule proves the hang, the skew is said.
        assert_eq!(a.verdict, Verdict::Hung, "{a:#?}");
        assert!(
            a.findings.iter().any(|f| f.verdict == Verdict::Unknown
                && f.evidence[0].contains("clock skew: the token record")),
            "{a:#?}"
        );
    }

    /// An accepted connection of the seed's worker: a request of `rx` bytes in, `tx` out, its
    /// last byte in `recv_s` and out `sent_s` seconds before the reading.
    fn conn(peer: &str, recv_s: u64, sent_s: u64, rx: u64, tx: u64) -> crate::model::TcpConnection {
        crate::model::TcpConnection {
            fd: Some(12),
            local: "127.0.0.1:8080".into(),
            peer: peer.into(),
            state: "established".into(),
            accepted: true,
            last_recv_ms: Some(recv_s * 1000),
            last_sent_ms: Some(sent_s * 1000),
            bytes_received: Some(rx),
            bytes_sent: Some(tx),
            rx_queue: Some(0),
            tx_queue: Some(0),
            server_reading: None,
            server_writing: None,
        }
    }

    fn hung_evidence(a: &Assessment) -> String {
        a.findings
            .iter()
            .find(|f| f.verdict == Verdict::Hung)
            .map(|f| f.evidence.join("\n"))
            .unwrap_or_else(|| panic!("no hang: {a:#?}"))
    }

    fn sockets(conns: Vec<crate::model::TcpConnection>) -> crate::model::Connections {
        crate::model::Connections {
            listening: vec!["127.0.0.1:8080".into()],
            accepted: conns,
            left_out: 0,
            error: None,
        }
    }

    fn probe(state: crate::model::ProbeState, age_secs: f64) -> crate::model::ProbeReport {
        let now = Utc.with_ymd_and_hms(2026, 1, 6, 7, 2, 46).unwrap();
        crate::model::ProbeReport {
            url: "http://127.0.0.1:8080".into(),
            sent_at: now - chrono::Duration::milliseconds((age_secs * 1000.0) as i64),
            state,
            age_secs,
            deadline_secs: 300.0,
            first_byte_secs: None,
            first_token_secs: (state == crate::model::ProbeState::Answered).then_some(0.2),
            seconds: (state != crate::model::ProbeState::InFlight).then_some(age_secs),
            error: (state == crate::model::ProbeState::Failed)
                .then(|| "HTTP 404: generation thread died".to_string()),
            local: Some("127.0.0.1:40000".into()),
        }
    }

    #[test]
    fn a_connection_awaiting_its_response_is_work_in_flight_without_a_log() {
        let re = Regex::new("mlx_lm").unwrap();
        let idle = idle_series();
        // A request of 300 bytes came in 10 minutes ago; nothing went back.
        let waiting = sockets(vec![
            conn("127.0.0.1:50001", 600, 600, 300, 0),
            conn("127.0.0.1:50002", 400, 400, 280, 0),
        ]);
        let mut o = observe(&idle, None, None, &re);
        o.connections = Some(&waiting);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Hung, Activity::Stalled),
            "{a:#?}"
        );
        assert_eq!(rule(&a).len(), 7, "no probe, no probe condition: {a:#?}");
        assert!(rule(&a).iter().all(|(_, held)| *held));
        let ev = hung_evidence(&a);
        assert!(
            ev.contains("connection from 127.0.0.1:50001 to 127.0.0.1:8080")
                && ev.contains("its request arrived 10m00s ago and nothing was sent back since")
                && ev.contains("300 B received, 0 B sent")
                && ev.contains(
                    "1 more connection(s) awaiting a response: 127.0.0.1:50002 waiting 6m40s"
                ),
            "{ev}"
        );
        let work = &a.hung_rule[0];
        assert!(work.fact.contains("(socket table)"), "{work:?}");
        // The same at 100% CPU: a long generation, working.
        let hot = hot_series();
        let mut o = observe(&hot, None, None, &re);
        o.connections = Some(&waiting);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working),
            "{a:#?}"
        );
        assert!(!held(&a, "CPU still") && held(&a, "work in flight"));
        // A third client asked for a stream and stopped reading: a server thread is blocked
        // writing to it, 2 MB queued. The worker waits on that client: never hung, even with
        // two requests waiting past --hung-after and the CPU still.
        let mut stalled = conn("127.0.0.1:50003", 900, 1, 120, 6_000_000);
        stalled.tx_queue = Some(2_000_000);
        stalled.server_writing = Some(true);
        let mut with_reader = waiting.clone();
        with_reader.accepted.push(stalled);
        let mut o = observe(&idle, None, None, &re);
        o.connections = Some(&with_reader);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::WaitingOnClient),
            "{a:#?}"
        );
        let c = a
            .hung_rule
            .iter()
            .find(|c| c.condition == "not waiting on its client")
            .unwrap();
        assert!(
            !c.held
                && c.fact.contains("127.0.0.1:50003")
                && c.fact.contains("2000000 B not taken by the client"),
            "{c:?}"
        );
        // Young: 3 s in, stalled but not hung.
        let young = sockets(vec![conn("127.0.0.1:50001", 3, 3, 300, 0)]);
        let mut o = observe(&idle, None, None, &re);
        o.connections = Some(&young);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Stalled),
            "{a:#?}"
        );
        assert!(!held(&a, "older than --hung-after"));
    }

    #[test]
    fn what_the_socket_table_cannot_tell_apart_is_context_not_proof() {
        let re = Regex::new("mlx_lm").unwrap();
        let idle = idle_series();
        // Data sent after the request, then 20 minutes of quiet: a keep-alive at rest, a stream
        // between tokens or one that stopped. And a request the server is still reading (a
        // partial request, slowloris). And one connection opened with nothing sent yet.
        let mut reading = conn("127.0.0.1:50003", 900, 900, 40, 0);
        reading.server_reading = Some(true);
        let ctx = sockets(vec![
            conn("127.0.0.1:50001", 1300, 1200, 300, 9000),
            reading,
            conn("127.0.0.1:50004", 900, 900, 0, 0),
        ]);
        let mut o = observe(&idle, None, None, &re);
        o.connections = Some(&ctx);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Idle),
            "{a:#?}"
        );
        assert!(a.hung_rule.is_empty());
        let notes = a.notes.join("\n");
        assert!(
            notes.contains("data last sent 20m00s ago, after its request: a keep-alive connection at rest, a stream between tokens and a streamed response that stopped look alike"),
            "{notes}"
        );
        assert!(
            notes.contains("slowloris") && notes.contains("not work in flight"),
            "{notes}"
        );
        assert!(
            notes.contains("no request waiting for a response in the socket table (3 accepted connection(s), listening on 127.0.0.1:8080)"),
            "{notes}"
        );
        // A socket table that could not be read is said, and proves nothing.
        let unknown =
            crate::model::Connections::unknown("PID 1 is in another network namespace".into());
        let mut o = observe(&idle, None, None, &re);
        o.connections = Some(&unknown);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Healthy);
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("socket table unknown: PID 1 is in another"))
        );
    }

    #[test]
    fn an_unanswered_probe_is_work_in_flight_and_an_answer_is_progress() {
        use crate::model::ProbeState;
        let re = Regex::new("mlx_lm").unwrap();
        let re_seed = Regex::new("mlx-server-v3").unwrap();
        let idle = idle_series();
        // No answer within --hung-after, the CPU and GPU idle: hung, with the probe's timings.
        let silent = probe(ProbeState::NoAnswer, 300.0);
        // The probe's own connection is in the socket table too: not counted twice.
        let own = sockets(vec![conn("127.0.0.1:40000", 300, 300, 200, 0)]);
        let mut o = observe(&idle, None, None, &re);
        o.probe = Some(&silent);
        o.connections = Some(&own);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Hung, Activity::Stalled),
            "{a:#?}"
        );
        assert_eq!(rule(&a).len(), 8, "{a:#?}");
        assert!(held(&a, "no answer to the probe"));
        let ev = hung_evidence(&a);
        assert!(
            ev.contains("the probe http://127.0.0.1:8080 (max_tokens 1) sent 5m00s ago")
                && ev.contains("no answer within --hung-after 5m00s (first byte none, first token none, given up after 300.00s)")
                && !ev.contains("127.0.0.1:40000"),
            "{ev}"
        );
        // Still in flight and young: stalled, not yet.
        let young = probe(ProbeState::InFlight, 2.0);
        let mut o = observe(&idle, None, None, &re);
        o.probe = Some(&young);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Stalled),
            "{a:#?}"
        );
        // The seed's old logged request, but the probe was answered: the generation path works,
        // a condition that did not hold.
        let log = seed_log();
        let e = entry(49387);
        let answered = probe(ProbeState::Answered, 0.3);
        let mut o = observe(&idle, Some(&e), Some(&log), &re_seed);
        o.probe = Some(&answered);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Healthy, "{a:#?}");
        assert!(!held(&a, "no answer to the probe") && held(&a, "CPU still"));
        assert!(
            a.notes.iter().any(|n| n.contains(
                "the generation path works: not hung (did not hold: no answer to the probe)"
            )),
            "{:?}",
            a.notes
        );
        // An error is an answer, not a hang; but the server does not generate: unknown.
        let failed = probe(ProbeState::Failed, 0.1);
        o.probe = Some(&failed);
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Unknown, "{a:#?}");
        assert!(!held(&a, "no answer to the probe"));
        assert!(
            a.findings[0].evidence[0].contains("HTTP 404: generation thread died")
                && a.findings[0].evidence[0].contains("does not generate"),
            "{a:#?}"
        );
        // Idle, no work, the probe answered: idle, said.
        let mut o = observe(&idle, None, None, &re);
        o.probe = Some(&answered);
        let a = assess(&o, &Thresholds::default());
        assert_eq!((a.verdict, a.activity), (Verdict::Healthy, Activity::Idle));
        assert!(a.hung_rule.is_empty());
        assert!(
            a.notes.iter().any(|n| n.contains("was answered")),
            "{:?}",
            a.notes
        );
    }
}
