//! Generated artefacts in the repository must match the binary: completions and the man page.
//! Regenerate with `scripts/gen-docs` when this fails.

use crate::util::{run, stdout};

fn assert_same(committed: &str, args: &[&str]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(committed);
    let on_disk =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let generated = stdout(&run(args));
    assert!(
        on_disk == generated,
        "{committed} is stale: run scripts/gen-docs"
    );
}

#[test]
fn completions_are_current() {
    assert_same("completions/mlsdiag.bash", &["completions", "bash"]);
    assert_same("completions/_mlsdiag", &["completions", "zsh"]);
    assert_same("completions/mlsdiag.fish", &["completions", "fish"]);
}

#[test]
fn man_page_is_current() {
    assert_same("docs/mlsdiag.1", &["man"]);
}

#[test]
fn every_page_mlsdiag_1_points_to_exists_and_is_current() {
    let main = stdout(&run(&["man"]));
    let list = stdout(&run(&["man", "--list"]));
    let subs: Vec<&str> = list.lines().collect();
    assert!(subs.contains(&"check") && subs.contains(&"watch"), "{list}");
    for sub in &subs {
        assert!(
            main.contains(&format!("mlsdiag\\-{}(1)", sub.replace('-', "\\-"))),
            "mlsdiag(1) names mlsdiag-{sub}(1)"
        );
        assert_same(&format!("docs/man/mlsdiag-{sub}.1"), &["man", sub]);
    }
    // No stale page of a subcommand that is gone.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), subs.len());
}

/// README's example `--on-finding` hook, run as written: it reads the finding from stdin and
/// builds its JSON with an encoder, so a hostile worker name cannot break out of it.
#[test]
fn the_readme_hook_reads_its_input_and_builds_json_safely() {
    use std::os::unix::fs::PermissionsExt;
    let readme = std::fs::read_to_string(crate::util::root("README.md")).unwrap();
    let start = readme
        .find("  #!/bin/sh\n  # /usr/local/bin/mls-alert")
        .unwrap();
    let end = start + readme[start..].find("  ```").unwrap();
    let script: String = readme[start..end]
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let d = tempfile::tempdir().unwrap();
    let exe = |name: &str, body: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let hook = exe("mls-alert", &script);
    let sent = d.path().join("sent.json");
    // Stand-ins for curl and launchctl that record what they were given.
    exe(
        "curl",
        "#!/bin/sh\nprev=\nfor a; do [ \"$prev\" = --data-binary ] && printf '%s' \"$a\" > \"$SENT\"; prev=$a; done\n",
    );
    exe("launchctl", "#!/bin/sh\necho \"$@\" > \"$SENT.kick\"\n");
    let evil = r#"w"1 $(touch pwned) `id` \"#;
    let finding = serde_json::json!({
        "worker": {"name": evil, "pid": 49387, "verdict": "hung",
                   "findings": [{"verdict": "hung", "evidence": ["request \"req-319\" in flight"]}]},
        "snapshot": "/var/snap.json",
    });
    let path = format!("{}:{}", d.path().display(), std::env::var("PATH").unwrap());
    let out = crate::util::feed(
        {
            let mut c = std::process::Command::new(&hook);
            c.env("PATH", path)
                .env("SENT", &sent)
                .env("SLACK_WEBHOOK", "http://127.0.0.1:9/hook")
                .env("MLSDIAG_VERDICT", "hung")
                .env("MLSDIAG_UNTRUSTED", "0")
                .current_dir(d.path());
            c
        },
        finding.to_string().as_bytes(),
    );
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    let payload: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sent).unwrap()).unwrap();
    let text = payload["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("{evil} (PID 49387) is hung: request \"req-319\"")),
        "{text}"
    );
    assert!(!d.path().join("pwned").exists());
    assert!(
        std::fs::read_to_string(d.path().join("sent.json.kick"))
            .unwrap()
            .contains("kickstart")
    );
}
