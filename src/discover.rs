//! Which processes are MLX serving workers: the seed's `ps aux | grep mlx-server-v3`, done
//! carefully and widened to the servers people run.
//!
//! With no `--pattern` ([`Search::Auto`]) a worker is any live process that runs MLS's worker
//! command ([`DEFAULT_PATTERN`]), runs a known MLX server ([`known_server`]: `mlx_lm.server`,
//! LM Studio's mlx-engine, exo, vllm-mlx, mlx-omni-server, …), or has MLX loaded (libmlx or
//! MLX's Python extension among its mapped files, [`is_mlx_image`]). With `--pattern`
//! ([`Search::Pattern`]) it is any live process whose command line matches it. Either way every
//! PID the registry lists is one too (alive or not: a listed PID that is gone is exactly a
//! crash), and each says how it was found ([`FoundBy`]).
//!
//! No mlsdiag process is ever a worker: not this one, not the shell that launched it, and no
//! other process running mlsdiag's executable whatever its arguments (a background
//! `mlsdiag watch --pattern mlx_lm` has the pattern in its command line), except the demo's
//! simulated MLS (the hidden `__demo-*` modes). A found process that is the parent of other
//! workers is their orchestrator, not an orphan worker.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Serialize;

use crate::error::InspectError;
use crate::model::RegistryEntry;
use crate::platform::Platform;
use crate::registry::Registry;

/// How a worker was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FoundBy {
    /// Listed in the registry (and maybe matched too).
    Registry,
    /// Its command line matched the pattern (`--pattern`, or MLS's by default).
    Pattern,
    /// Its command line is that of a known MLX server (the label of [`known_server`]).
    KnownServer(&'static str),
    /// MLX is loaded in it (libmlx or MLX's Python extension is mapped).
    MlxLoaded,
}

impl FoundBy {
    /// What reports say: `registry`, `pattern`, `known server: mlx_lm.server`, `mlx loaded`.
    pub fn label(&self) -> String {
        match self {
            FoundBy::Registry => "registry".into(),
            FoundBy::Pattern => "pattern".into(),
            FoundBy::KnownServer(s) => format!("known server: {s}"),
            FoundBy::MlxLoaded => "mlx loaded".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub pid: u32,
    pub registered: Option<RegistryEntry>,
    /// The command line matched the pattern whose workers the registry lists (`--pattern`, or
    /// MLS's): a live one the registry does not list is unknown to its orchestrator.
    pub matched: bool,
    pub found_by: FoundBy,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Discovery {
    pub workers: Vec<Candidate>,
    /// Found processes that are parents of workers: `(pid, number of worker children)`.
    pub orchestrators: Vec<(u32, usize)>,
    /// Processes whose mapped files could not be read (another user's, without root), so not
    /// searched for MLX (automatic discovery only).
    pub unreadable: usize,
}

/// The default pattern: the command lines of MLS workers.
pub const DEFAULT_PATTERN: &str = "mlx-server-v3";

/// The known servers' words, as one regex over a command line (or one argument of it): what a
/// registered PID's command must still match in automatic discovery, and where a worker's name
/// comes from. [`known_server`] is the precise matcher discovery uses.
const KNOWN_SERVERS_RE: &str = r"mlx_lm[./]server|mlx_lm\s+server|mlx[-_]omni[-_]server|vllm[-_]mlx|mlx_vlm[./]server|mlx[-_]openai[-_]server|(?:^|[/\s])exo(?:\.main)?(?:\s|$)|app-mlx-generate|llm_engine_mlx";

/// What to search the process table for.
#[derive(Debug, Clone)]
pub enum Search {
    /// No `--pattern`: MLS's pattern, known servers, and every process with MLX loaded.
    Auto {
        /// MLS's pattern: the workers a registry lists.
        mls: Regex,
        /// MLS's pattern or a known server's words ([`KNOWN_SERVERS_RE`]).
        any: Regex,
    },
    /// `--pattern`: only the processes whose command line matches it.
    Pattern(Regex),
}

impl Search {
    /// `--pattern` when given, else automatic discovery.
    pub fn new(pattern: Option<&str>) -> anyhow::Result<Search> {
        Ok(match pattern {
            Some(p) => Search::Pattern(self::pattern(p)?),
            None => Search::Auto {
                mls: Regex::new(DEFAULT_PATTERN)?,
                any: Regex::new(&format!("{DEFAULT_PATTERN}|{KNOWN_SERVERS_RE}"))?,
            },
        })
    }

    /// The regex a registered PID's command line must still match (else the PID was reused)
    /// and that worker names are taken from.
    pub fn regex(&self) -> &Regex {
        match self {
            Search::Auto { any, .. } => any,
            Search::Pattern(re) => re,
        }
    }

    /// The pattern whose matching processes the registry should list.
    pub fn registry_pattern(&self) -> &Regex {
        match self {
            Search::Auto { mls, .. } => mls,
            Search::Pattern(re) => re,
        }
    }

    /// The pattern reports show (`pattern` in JSON): `--pattern`, or MLS's.
    pub fn pattern_text(&self) -> &str {
        self.registry_pattern().as_str()
    }

    pub fn is_auto(&self) -> bool {
        matches!(self, Search::Auto { .. })
    }

    /// What was searched, for the message when nothing is found.
    pub fn describe(&self) -> String {
        match self {
            Search::Auto { mls, .. } => format!(
                "no process runs MLS's worker command ({:?}) or a known MLX server ({}), and none has MLX loaded (libmlx or mlx/core*.so mapped)",
                mls.as_str(),
                KNOWN_SERVER_NAMES
            ),
            Search::Pattern(re) => format!("no process matches --pattern {:?}", re.as_str()),
        }
    }

    /// What to pass when nothing was found (a sentence).
    pub fn suggestion(&self) -> &'static str {
        match self {
            Search::Auto { .. } => {
                "For a server with another command line, pass --pattern REGEX (matched against the full command line); for an orchestrator's workers, --registry FILE"
            }
            Search::Pattern(_) => {
                "Leave out --pattern to search for MLS's workers, known MLX servers and every process with MLX loaded"
            }
        }
    }
}

/// The known servers, as docs and messages list them.
pub const KNOWN_SERVER_NAMES: &str = "mlx_lm.server, mlx_lm server, LM Studio's mlx-engine, exo, vllm-mlx, mlx-omni-server, mlx_vlm.server, mlx-openai-server";

/// mlsdiag itself: its pid, its launchers, and its executable file.
struct Ourselves {
    /// Our pid and every ancestor whose command line mentions mlsdiag (`sh -c 'mlsdiag …'`,
    /// `timeout 5 mlsdiag …`): their command lines contain the pattern but they are not workers.
    launchers: Vec<u32>,
    /// `(device, inode)` of our executable.
    exe: Option<(u64, u64)>,
}

impl Ourselves {
    fn new(platform: &dyn Platform) -> Ourselves {
        let me = std::process::id();
        let mut launchers = vec![me];
        let mut pid = me;
        for _ in 0..16 {
            let Ok(p) = platform.process(pid) else { break };
            if p.ppid <= 1 {
                break;
            }
            pid = p.ppid;
            if platform
                .cmdline(pid)
                .is_ok_and(|c| c.iter().any(|a| a.contains("mlsdiag")))
            {
                launchers.push(pid);
            }
        }
        let exe = platform.exe_id(me).ok().flatten();
        Ourselves { launchers, exe }
    }

    /// Whether `pid` (whose argument vector is `cmd`) is an mlsdiag process: the same
    /// executable as ours (whatever its arguments), a program named `mlsdiag` (another user's,
    /// whose executable cannot be read), or `python -m mlsdiag`. The demo's simulated MLS
    /// (mlsdiag's hidden `__demo-*` modes) stands in for a server and is not skipped.
    fn runs(&self, platform: &dyn Platform, pid: u32, cmd: &[String]) -> bool {
        if cmd.get(1).is_some_and(|a| a.starts_with("__demo-")) {
            return false;
        }
        let prog = cmd.first().map_or("", |a| file_name(a));
        prog == "mlsdiag"
            || entry(cmd).is_some_and(|e| e.module && e.name == "mlsdiag")
            || (self.exe.is_some() && platform.exe_id(pid).ok().flatten() == self.exe)
    }
}

/// The PIDs a command was given, or else every worker that discovery finds.
pub fn pids_or_workers(
    platform: &dyn Platform,
    search: &Search,
    registry: Option<&Registry>,
    pids: &[u32],
) -> anyhow::Result<Vec<u32>> {
    if !pids.is_empty() {
        return Ok(pids.to_vec());
    }
    let found = discover(platform, search, registry)?;
    Ok(found.workers.iter().map(|c| c.pid).collect())
}

/// How one live process is found, if it is: the pattern, then a known server's command line,
/// then (automatic discovery only, and only now, as it is the costly read) MLX in its mapped
/// files. `unreadable` counts the processes whose mapped files could not be read.
fn classify(
    platform: &dyn Platform,
    search: &Search,
    pid: u32,
    cmd: &[String],
    unreadable: &mut usize,
) -> Option<FoundBy> {
    let joined = cmd.join(" ");
    match search {
        Search::Pattern(re) => re.is_match(&joined).then_some(FoundBy::Pattern),
        Search::Auto { mls, .. } => {
            if mls.is_match(&joined) {
                return Some(FoundBy::Pattern);
            }
            if let Some(s) = known_server(cmd) {
                return Some(FoundBy::KnownServer(s));
            }
            match platform.mlx_image(pid, cmd) {
                Ok(Some(_)) => Some(FoundBy::MlxLoaded),
                Err(InspectError::PermissionDenied { .. }) => {
                    *unreadable += 1;
                    None
                }
                _ => None,
            }
        }
    }
}

pub fn discover(
    platform: &dyn Platform,
    search: &Search,
    registry: Option<&Registry>,
) -> anyhow::Result<Discovery> {
    let us = Ourselves::new(platform);
    let mut found: BTreeMap<u32, Candidate> = BTreeMap::new();
    let mut commands: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut unreadable = 0;
    for pid in platform.pids()? {
        if us.launchers.contains(&pid) {
            continue;
        }
        let Ok(cmd) = platform.cmdline(pid) else {
            continue;
        };
        if cmd.is_empty() {
            continue;
        }
        let Some(found_by) = classify(platform, search, pid, &cmd, &mut unreadable) else {
            continue;
        };
        // Only a found process is asked for its executable: one more read, not one per process.
        if us.runs(platform, pid, &cmd) {
            continue;
        }
        commands.insert(pid, cmd);
        found.insert(
            pid,
            Candidate {
                pid,
                registered: None,
                matched: found_by == FoundBy::Pattern,
                found_by,
            },
        );
    }
    if let Some(reg) = registry {
        for e in &reg.entries {
            let c = found.entry(e.pid).or_insert(Candidate {
                pid: e.pid,
                registered: None,
                matched: false,
                found_by: FoundBy::Registry,
            });
            c.registered = Some(e.clone());
            c.found_by = FoundBy::Registry;
        }
    }
    // A found, unregistered process whose children are workers is the orchestrator; a child
    // with its parent's very command line is a forked helper of that worker, which makes the
    // parent no orchestrator (both are judged, and the log's lines are the parent's).
    let mut children: BTreeMap<u32, usize> = BTreeMap::new();
    for c in found.values() {
        if let Ok(p) = platform.process(c.pid) {
            let forked = commands
                .get(&p.ppid)
                .is_some_and(|parent| commands.get(&c.pid) == Some(parent));
            if !forked {
                *children.entry(p.ppid).or_default() += 1;
            }
        }
    }
    let mut d = Discovery {
        unreadable,
        ..Discovery::default()
    };
    for (pid, c) in found {
        match children.get(&pid) {
            Some(&n) if c.registered.is_none() => d.orchestrators.push((pid, n)),
            _ => d.workers.push(c),
        }
    }
    Ok(d)
}

/// The best human name for a worker: the registry's, else the argument that matched, else the
/// known server it runs, else comm.
pub fn worker_name(
    entry: Option<&RegistryEntry>,
    cmdline: &[String],
    comm: &str,
    re: &Regex,
) -> String {
    if let Some(n) = entry.and_then(|e| e.name.clone()) {
        return n;
    }
    cmdline
        .iter()
        .find(|a| re.is_match(a))
        .map(|a| {
            Path::new(a)
                .file_name()
                .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
        })
        .or_else(|| known_server(cmdline).map(str::to_string))
        .unwrap_or_else(|| comm.to_string())
}

/// Compile the discovery pattern, with an error that names the flag.
pub fn pattern(p: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(p).map_err(|e| anyhow::anyhow!("--pattern {p:?} is not a valid regex: {e}"))
}

/// The last component of a path (the whole string when it has none).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A Python interpreter's file name: `python`, `python3`, `python3.12`, `python3.13t`,
/// `pythonw`, and macOS's framework `Python`.
fn is_python(name: &str) -> bool {
    name == "Python"
        || name.strip_prefix("python").is_some_and(|v| {
            v.len() <= 8
                && v.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 't' | 'w' | 'd' | 'm'))
        })
}

/// Whether a process may have MLX loaded: a Python interpreter (by its command line, or by its
/// executable `exe` when a title rewrote the command line, see [`retitled`]), or a command line
/// that names MLX or LM Studio (its engine's host process). Only these have their mapped files
/// read: reading every process's costs ~60 µs a process on Linux (docs/benchmarks.md), one call
/// per image on macOS. A program that links MLX itself and says nothing of it in its command
/// line is found by `--pattern`.
pub fn may_load_mlx(argv: &[String], exe: Option<&str>) -> bool {
    exe.is_some_and(|e| is_python(file_name(e.strip_suffix(" (deleted)").unwrap_or(e))))
        || argv.first().is_some_and(|a| is_python(file_name(a)))
        || argv.iter().any(|a| {
            a.contains("mlx")
                || a.contains("MLX")
                || a.contains("LM Studio")
                || a.contains("lmstudio")
                || a.contains("python")
                || a.contains("Python")
        })
}

/// Whether the command line is a title the process gave itself (setproctitle: `VLLM::EngineCore`,
/// `gunicorn: worker [app]`): one argument holding a space or a colon. Its executable then tells
/// whether it is a Python interpreter (one more read, for these few processes only).
pub fn retitled(argv: &[String]) -> bool {
    matches!(argv, [one] if one.contains(' ') || one.contains(':'))
}

/// What a command line runs: a program or script (its file name), or a Python module
/// (`python -m NAME`), and the arguments after it.
struct Entry<'a> {
    name: &'a str,
    module: bool,
    rest: &'a [String],
}

/// The program a command line runs. For a Python interpreter, the script or `-m` module after
/// its options (a pip console script runs as `python /venv/bin/mlx_lm.server …`); `None` for
/// `python -c` and an interactive interpreter.
fn entry(argv: &[String]) -> Option<Entry<'_>> {
    let prog = file_name(argv.first()?);
    if !is_python(prog) {
        return Some(Entry {
            name: prog,
            module: false,
            rest: &argv[1..],
        });
    }
    let args = &argv[1..];
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "-" {
            return None;
        }
        if !a.starts_with('-') {
            return Some(Entry {
                name: file_name(a),
                module: false,
                rest: &args[i + 1..],
            });
        }
        if a == "--check-hash-based-pycs" {
            i += 2;
            continue;
        }
        if a.starts_with("--") {
            i += 1;
            continue;
        }
        // A cluster of one-letter options (`-u`, `-Bm mod`, `-X dev`).
        let opts = &a[1..];
        for (j, c) in opts.char_indices() {
            let attached = &opts[j + 1..];
            match c {
                'm' if attached.is_empty() => {
                    let name = args.get(i + 1)?;
                    return Some(Entry {
                        name,
                        module: true,
                        rest: &args[(i + 2).min(args.len())..],
                    });
                }
                'm' => {
                    return Some(Entry {
                        name: attached,
                        module: true,
                        rest: &args[i + 1..],
                    });
                }
                'c' => return None,
                'W' | 'X' => {
                    if attached.is_empty() {
                        i += 1;
                    }
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The known MLX server a command line runs, by its label: the program or Python module it
/// runs, not a word anywhere in it (a shell, `tail -f mlx_lm.server.log` or an editor naming
/// the server is none). Recognized (console scripts, `python -m`, and `python SCRIPT`):
///
/// | label | command lines |
/// |---|---|
/// | `mlx_lm.server` | `mlx_lm.server …`, `python -m mlx_lm.server …` |
/// | `mlx_lm server` | `mlx_lm server …`, `python -m mlx_lm server …` |
/// | `LM Studio mlx-engine` | any argument naming LM Studio's MLX engine (`app-mlx-generate`, `llm_engine_mlx`) |
/// | `exo` | `exo …`, `python -m exo.main` |
/// | `vllm-mlx` | `vllm-mlx serve …`, `vllm-mlx --model …` |
/// | `mlx-omni-server` | `mlx-omni-server …`, `python -m mlx_omni_server.main` |
/// | `mlx_vlm.server` | `mlx_vlm.server …`, `python -m mlx_vlm.server …` |
/// | `mlx-openai-server` | `mlx-openai-server launch …` |
pub fn known_server(argv: &[String]) -> Option<&'static str> {
    if argv
        .iter()
        .any(|a| a.contains("app-mlx-generate") || a.contains("llm_engine_mlx"))
    {
        return Some("LM Studio mlx-engine");
    }
    let e = entry(argv)?;
    let first = e.rest.first().map(String::as_str);
    let name = e.name.strip_suffix(".py").unwrap_or(e.name);
    let server = match name {
        "mlx_lm.server" => "mlx_lm.server",
        "mlx_lm" if first == Some("server") => "mlx_lm server",
        "exo" | "exo.main" => "exo",
        "vllm-mlx" | "vllm_mlx" | "vllm_mlx.cli"
            if first.is_none_or(|f| f == "serve" || f.starts_with('-')) =>
        {
            "vllm-mlx"
        }
        "mlx-omni-server" | "mlx_omni_server" | "mlx_omni_server.main" => "mlx-omni-server",
        "mlx_vlm.server" => "mlx_vlm.server",
        "mlx-openai-server" | "mlx_openai_server" | "mlx_openai_server.cli" => "mlx-openai-server",
        _ => return None,
    };
    Some(server)
}

/// Whether a mapped file or loaded image is MLX: libmlx (`libmlx.so`, `libmlx.dylib`, mlx-c's
/// `libmlxc`) or MLX's Python extension (`mlx/core.cpython-311-x86_64-linux-gnu.so`,
/// `mlx/core.cpython-312-darwin.so`, `mlx/core.abi3.so`). `mlx_cpu.libs/libgfortran…` (a
/// library MLX's CPU wheel ships) is not.
pub fn is_mlx_image(path: &str) -> bool {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let name = file_name(path);
    if let Some(rest) = name.strip_prefix("libmlx") {
        // libmlx.so, libmlx.so.0.21, libmlx.dylib, libmlx.0.21.0.dylib; mlx-c's libmlxc.
        let rest = rest.strip_prefix('c').unwrap_or(rest);
        return rest.starts_with('.') && (rest.contains(".so") || rest.ends_with(".dylib"));
    }
    let dir = path[..path.len() - name.len()].trim_end_matches('/');
    file_name(dir) == "mlx" && name.starts_with("core.") && name.ends_with(".so")
}

/// The first MLX image in the text of `/proc/PID/maps`, if any. Only lines holding `mlx` are
/// looked at (memchr finds them), so a process without MLX costs one scan of its text.
pub fn mlx_image_in_maps(maps: &[u8]) -> Option<&str> {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&maps[from..], b"mlx") {
        let at = from + at;
        let start = memchr::memrchr(b'\n', &maps[..at]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &maps[at..]).map_or(maps.len(), |i| at + i);
        if let Some(path) = std::str::from_utf8(&maps[start..end])
            .ok()
            .and_then(maps_path)
            .filter(|p| is_mlx_image(p))
        {
            return Some(path);
        }
        from = end;
    }
    None
}

/// The path field of one `/proc/PID/maps` line (`address perms offset dev inode path`); the
/// path may hold spaces.
fn maps_path(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        let field = rest.find(char::is_whitespace)?;
        rest = &rest[field..];
    }
    let path = rest.trim_start();
    path.starts_with('/').then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn known_servers_by_program_or_module() {
        for (cmd, want) in [
            (
                "/venv/bin/python3 /venv/bin/mlx_lm.server --model m --port 8080",
                "mlx_lm.server",
            ),
            ("mlx_lm.server --model m", "mlx_lm.server"),
            ("python -m mlx_lm.server --model m", "mlx_lm.server"),
            ("python3.11 -u -X dev -m mlx_lm.server", "mlx_lm.server"),
            ("python -Bm mlx_lm.server", "mlx_lm.server"),
            (
                "/usr/bin/python3 /venv/bin/mlx_lm server --model m",
                "mlx_lm server",
            ),
            ("python -m mlx_lm server --port 1", "mlx_lm server"),
            (
                "/Applications/Python.app/Contents/MacOS/Python -m mlx_lm.server",
                "mlx_lm.server",
            ),
            ("/venv/bin/python /venv/bin/exo", "exo"),
            ("python -m exo.main", "exo"),
            (
                "/env/bin/python3 /env/bin/vllm-mlx serve mlx-community/Qwen3-4B --port 8000",
                "vllm-mlx",
            ),
            ("vllm-mlx --model m", "vllm-mlx"),
            (
                "/env/bin/python /env/bin/mlx-omni-server --port 10240",
                "mlx-omni-server",
            ),
            ("python -m mlx_vlm.server --model m", "mlx_vlm.server"),
            (
                "mlx-openai-server launch --model-path m",
                "mlx-openai-server",
            ),
            (
                "/Users/u/.lmstudio/extensions/backends/vendor/_amphibian/app-mlx-generate-mac14-arm64@29/bin/python",
                "LM Studio mlx-engine",
            ),
        ] {
            assert_eq!(known_server(&argv(cmd)), Some(want), "{cmd}");
        }
    }

    #[test]
    fn a_word_in_a_command_line_is_no_server() {
        for cmd in [
            "bash -c mlx_lm.server --port 8080",
            "tail -f /var/log/mlx_lm.server.log",
            "vim mlx_lm/server.py",
            "python -c import mlx_lm.server",
            "python",
            "python -m mlx_lm generate --prompt hi",
            "python -m mlx_lm.generate --prompt hi",
            "vllm-mlx bench",
            "mlsdiag watch --pattern mlx_lm",
            "timeout 60 python -m mlx_lm.server",
            "python -W ignore",
            "",
        ] {
            assert_eq!(known_server(&argv(cmd)), None, "{cmd}");
        }
        // `timeout` runs it: the server is its child, found there.
        assert_eq!(known_server(&[]), None);
    }

    #[test]
    fn only_processes_that_may_load_mlx_are_read() {
        let may = |cmd: &str, exe: Option<&str>| may_load_mlx(&argv(cmd), exe);
        assert!(may("/venv/bin/python -m mlx_lm.server", None));
        assert!(may("python3.12 app.py", None));
        assert!(may("/opt/homebrew/bin/mlx-chat", None));
        let lm_studio = [
            "/Applications/LM Studio.app/Contents/MacOS/LM Studio".to_string(),
            "--type=utility".to_string(),
        ];
        assert!(may_load_mlx(&lm_studio, None));
        // A title (setproctitle) rewrote the command line: the executable tells.
        let titled = |t: &str| vec![t.to_string()];
        assert!(retitled(&titled("gunicorn: worker [app]")));
        assert!(retitled(&titled("VLLM::EngineCore")));
        assert!(!retitled(&argv("sleep 3600")) && !retitled(&argv("bash")));
        assert!(may_load_mlx(
            &titled("uvicorn worker"),
            Some("/usr/bin/python3.11")
        ));
        assert!(may_load_mlx(
            &titled("VLLM::EngineCore"),
            Some("/usr/bin/python3.11 (deleted)")
        ));
        assert!(!may("sleep 3600", Some("/usr/bin/sleep")));
        assert!(!may("/usr/sbin/sshd -D", None));
        assert!(!may("bash", Some("/usr/bin/bash")));
    }

    #[test]
    fn mlx_images_by_file_name() {
        for p in [
            "/v/lib/python3.11/site-packages/mlx/lib/libmlx.so",
            "/opt/homebrew/lib/libmlx.dylib",
            "/opt/homebrew/lib/libmlx.0.21.0.dylib",
            "/usr/local/lib/libmlxc.dylib",
            "/v/site-packages/mlx/core.cpython-311-x86_64-linux-gnu.so",
            "/v/site-packages/mlx/core.cpython-312-darwin.so",
            "/v/site-packages/mlx/core.abi3.so",
            "/v/site-packages/mlx/lib/libmlx.so (deleted)",
        ] {
            assert!(is_mlx_image(p), "{p}");
        }
        for p in [
            "/v/site-packages/mlx_cpu.libs/libgfortran-f7379c93.so.5.0.0",
            "/v/site-packages/mlx_lm/core.py",
            "/v/site-packages/numpy/core.cpython-311.so",
            "/v/site-packages/mlx/nn/layers.py",
            "/home/me/mlx/notes.txt",
            "libmlx",
            "/usr/lib/libmlxfoo.so",
        ] {
            assert!(!is_mlx_image(p), "{p}");
        }
    }

    #[test]
    fn maps_of_a_recorded_mlx_python() {
        // fixtures/linux/mlx-python.maps: `python -c "import mlx.core; time.sleep(…)"` from the
        // mlx-cpu 0.32.2 wheel, whose mlx_cpu.libs also hold "mlx" in their paths.
        let maps = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/linux/mlx-python.maps"
        ))
        .unwrap();
        let found = mlx_image_in_maps(&maps).unwrap();
        assert!(found.ends_with("/mlx/lib/libmlx.so"), "{found}");
        // The same text without MLX's own files: only mlx_cpu.libs remain, which are not MLX.
        let text = String::from_utf8(maps).unwrap();
        let without: String = text
            .lines()
            .filter(|l| !l.contains("/mlx/"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(without.contains("mlx_cpu.libs"));
        assert_eq!(mlx_image_in_maps(without.as_bytes()), None);
        assert_eq!(mlx_image_in_maps(b""), None);
        // A path with spaces, and a line with no path.
        let odd = b"7f00-7f01 r--p 00000000 fe:00 12   /Users/me/My Env/mlx/core.cpython-312-darwin.so\n7f02-7f03 rw-p 00000000 00:00 0 \n";
        assert_eq!(
            mlx_image_in_maps(odd),
            Some("/Users/me/My Env/mlx/core.cpython-312-darwin.so")
        );
    }

    #[test]
    fn search_modes() {
        let auto = Search::new(None).unwrap();
        assert!(auto.is_auto());
        assert_eq!(auto.pattern_text(), DEFAULT_PATTERN);
        // A registered stock server still passes the identity check; its name is the server's.
        assert!(auto.regex().is_match("python -m mlx_lm.server --port 8080"));
        assert!(auto.regex().is_match("/venv/bin/python /venv/bin/exo"));
        assert!(!auto.regex().is_match("/usr/bin/exotic --flag"));
        assert!(!auto.registry_pattern().is_match("python -m mlx_lm.server"));
        let name = |cmd: &str| worker_name(None, &argv(cmd), "python3", auto.regex());
        assert_eq!(
            name("/venv/bin/python /venv/bin/mlx_lm.server --port 1"),
            "mlx_lm.server"
        );
        assert_eq!(name("python -m mlx_lm server --port 1"), "mlx_lm server");
        assert_eq!(name("python -c import mlx.core"), "python3");
        let given = Search::new(Some("mlx_lm")).unwrap();
        assert!(!given.is_auto());
        assert_eq!(given.pattern_text(), "mlx_lm");
        assert!(given.describe().contains("--pattern \"mlx_lm\""));
        assert!(Search::new(Some("(")).is_err());
    }
}
