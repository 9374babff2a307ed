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
