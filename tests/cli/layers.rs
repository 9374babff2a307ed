//! The layering of `src/`, checked: imports go commands → services → {diagnose, render} →
//! collect → model → leaf, never upward; no `commands::` path outside `commands/` (and the
//! dispatch in `lib.rs`); no clap type outside `cli.rs`. README's "Layout" section draws it.
//!
//! It reads every `crate::…` path in the code (comments and strings left out), so a new import
//! that breaks the direction fails here, naming the file and the path.

use std::path::{Path, PathBuf};

/// Layer of a top-level module (the first segment under `src/`).
fn layer(module: &str) -> Option<(u8, &'static str)> {
    Some(match module {
        "error" | "fmt" | "input" | "output" => (0, "leaf"),
        "model" => (1, "model"),
        "platform" | "sample" | "discover" | "registry" | "logs" | "stacks" | "store"
        | "progress" | "probe" => (2, "collect"),
        "diagnose" => (3, "diagnose"),
        "render" => (3, "render"),
        "snapshot" | "repro" | "sim" | "metrics" | "fleet" | "actions" | "watch" | "top" => {
            (4, "services")
        }
        // The parser's argument types are the commands' input; `cli` converts them into the
        // libraries' options.
        "commands" | "cli" => (5, "commands"),
        "lib" | "main" => (6, "top"),
        _ => return None,
    })
}

/// Whether `from` may use `to`: a module uses its own layer and lower ones; renderers see only
/// the model and the leaf; the rules and the renderers never use each other.
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    let (Some((lf, nf)), Some((lt, _))) = (layer(from), layer(to)) else {
        return false;
    };
    match nf {
        "render" => lt <= 1,
        "diagnose" => lt <= 2,
        _ => lt <= lf,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and string literals (paths in prose do not count).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\n'); lifetimes ('a, 'static) have no closing quote here.
            let end = (i + 2..b.len()).find(|&j| b[j] == b'\'').unwrap_or(b.len());
            i = end + 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every top-level module a file's code names through `crate::` (or `super::` from a
/// directory module's root, which is the crate root for `src/*.rs`).
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        // `use crate::{a, b::c}` names several modules.
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        found.push(name);
    }
    found
}

fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn imports_only_go_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        if rel.starts_with("bin/") {
            continue; // the runner binary is its own crate root
        }
        let from = module_of(&src, f);
        assert!(
            layer(&from).is_some(),
            "src/{rel}: module `{from}` has no layer; add it to tests/cli/layers.rs and README's Layout"
        );
        let text = code(&std::fs::read_to_string(f).unwrap());
        // Unit tests may build what they test from anywhere (a parser, a fixture).
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for to in uses(text) {
            if !allowed(&from, &to) {
                wrong.push(format!("src/{rel}: `{from}` uses `crate::{to}`"));
            }
        }
        if from != "commands" && from != "lib" && text.contains("commands::") {
            wrong.push(format!("src/{rel}: a `commands::` path outside commands/"));
        }
        // The completions command prints the parser itself, so it is the one user of clap
        // outside the parser.
        if text.contains("clap::")
            && !matches!(
                rel.as_str(),
                "cli.rs" | "main.rs" | "commands/completions.rs"
            )
        {
            wrong.push(format!("src/{rel}: a clap type outside cli.rs"));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_what_it_must() {
    // The parser above is the test's own; prove it on the shapes the code uses.
    let text = code(
        "use crate::{metrics, registry};\n// crate::commands in a comment\nlet s = \"crate::cli\";\nuse crate::model::X; let c = '\"'; fn f<'a>() {} use crate::fmt;",
    );
    assert_eq!(uses(&text), ["metrics", "registry", "model", "fmt"]);
    assert!(allowed("commands", "diagnose") && allowed("diagnose", "model"));
    assert!(!allowed("model", "logs") && !allowed("render", "diagnose"));
    assert!(!allowed("logs", "diagnose") && !allowed("diagnose", "render"));
}
