//! The Grafana dashboard (docs/grafana-dashboard.json) against metrics mlsdiag really wrote:
//! the demo's workers are checked with `--textfile`, every series of that file becomes an input
//! series of a `promtool test rules` file, and every panel's query is evaluated on them. A
//! query that promtool cannot parse fails; a query that returns no data fails, except those
//! whose metrics the demo cannot give (no GPU source, no token records here), which must
//! still parse.

use serde_json::{Value, json};

use crate::util::{Sim, stderr};

/// Panels whose metrics the demo's simulated workers cannot give on this machine.
const NO_DEMO_DATA: &[&str] = &["GPU busy per worker", "Tokens per second"];

/// `name{labels} value` lines as promtool input series, with an `instance` label added.
fn input_series(prom: &str) -> Vec<Value> {
    prom.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let series = match series.split_once('{') {
                Some((name, rest)) => format!("{name}{{instance=\"demo\",{rest}"),
                None => format!("{series}{{instance=\"demo\"}}"),
            };
            json!({"series": series, "values": format!("{value}x4")})
        })
        .collect()
}

#[test]
fn every_dashboard_query_parses_and_returns_data_on_the_demos_metrics() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let out = sim.check(&[
        "--window",
        "0.5s",
        "--textfile",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let prom = std::fs::read_to_string(dir.path().join("mlsdiag.prom")).unwrap();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut tests = Vec::new();
    let mut queries = 0;
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "2m");
            queries += 1;
            let (test, value) = if NO_DEMO_DATA.contains(&title) {
                (format!("count({expr}) or vector(0)"), 0)
            } else {
                (format!("count({expr}) > bool 0"), 1)
            };
            tests.push(json!({
                "expr": test,
                "eval_time": "1m30s",
                "exp_samples": [{"labels": "{}", "value": value}],
            }));
        }
    }
    assert!(queries >= 12, "{queries} queries");
    let file = json!({
        "rule_files": [],
        "evaluation_interval": "30s",
        "tests": [{
            "interval": "30s",
            "input_series": input_series(&prom),
            "promql_expr_test": tests,
        }],
    });
    let path = dir.path().join("dashboard.test.yml");
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let args = ["test".as_ref(), "rules".as_ref(), path.as_os_str()];
    let (ok, why) = crate::util::promtool_in(dir.path(), &args);
    assert!(ok, "{why}\n{prom}");
    // The panels without demo data are so because the metrics are absent, not misnamed.
    assert!(!prom.contains("mlsdiag_worker_gpu_") && !prom.contains("mlsdiag_worker_tokens_"));
}
