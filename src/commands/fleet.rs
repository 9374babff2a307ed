//! `mlsdiag fleet HOST…`: the same diagnosis on every Mac (the Studio, the Mini, the Air) from
//! one place, over the system's OpenSSH, with nothing to install but mlsdiag itself. Each host
//! runs `mlsdiag check --json`; the results merge into one table and one exit code. A host that
//! cannot be reached, or has no mlsdiag, is its own UNKNOWN row with the reason, never a hang of
//! the whole command: ssh runs in batch mode with a connect timeout and an overall deadline.

use std::io::Write;

use super::Ctx;
use crate::cli::FleetArgs;
use crate::model::Status;
use crate::render;

/// Hosts from the arguments and `--hosts FILE` (one per line, `#` comments), in order, once.
fn hosts(args: &FleetArgs) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = args.hosts.clone();
    if let Some(p) = &args.hosts_file {
        let text = crate::input::read_to_string(p, crate::input::SMALL_FILE_LIMIT)?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                out.push(line.to_string());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    for h in &out {
        anyhow::ensure!(
            !h.starts_with('-') && !h.chars().any(char::is_whitespace),
            "{h:?} is not a host name"
        );
    }
    anyhow::ensure!(!out.is_empty(), "give hosts, or --hosts FILE");
    Ok(out)
}

pub fn run(args: &FleetArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let hosts = hosts(args)?;
    let report = crate::fleet::check_fleet(&hosts, &args.into())?;
    let status = report.status;
    ctx.emit(out, &report, render::fleet::fleet)?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> FleetArgs {
        let mut argv = vec!["mlsdiag", "fleet"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Fleet(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_remote_command_is_quoted_for_the_remote_shell() {
        let a = args(&[
            "h1",
            "--",
            "--log",
            "/tmp/my logs/mls.log",
            "--pattern",
            "a|b",
        ]);
        assert_eq!(
            crate::fleet::remote_command(&(&a).into()).unwrap(),
            "mlsdiag check --json --log '/tmp/my logs/mls.log' --pattern 'a|b'"
        );
    }

    #[test]
    fn hosts_come_from_args_and_file_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hosts");
        std::fs::write(&f, "# the fleet\nstudio\n\nmini  # desk\nstudio\n").unwrap();
        let a = args(&["air", "--hosts", f.to_str().unwrap()]);
        assert_eq!(hosts(&a).unwrap(), ["air", "studio", "mini"]);
        // A "host" that ssh would take as an option, from a file clap does not see.
        std::fs::write(&f, "-oProxyCommand=touch\n").unwrap();
        let a = args(&["--hosts", f.to_str().unwrap()]);
        assert!(
            hosts(&a)
                .unwrap_err()
                .to_string()
                .contains("not a host name")
        );
        assert!(hosts(&args(&[])).is_err());
    }

    #[test]
    fn ssh_runs_in_batch_mode_with_a_connect_timeout() {
        let a = args(&["h", "--connect-timeout", "3", "--ssh-option", "Port=2222"]);
        let c = crate::fleet::ssh_command(&(&a).into(), "h", "mlsdiag check --json");
        let argv: Vec<String> = c
            .get_args()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let joined = argv.join(" ");
        assert!(joined.contains("-o BatchMode=yes"), "{joined}");
        assert!(joined.contains("-o ConnectTimeout=3"), "{joined}");
        assert!(joined.contains("-o Port=2222"), "{joined}");
        assert!(joined.ends_with("-T h -- mlsdiag check --json"), "{joined}");
    }
}
