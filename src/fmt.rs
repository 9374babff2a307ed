//! The small formatters every layer shares: sizes, durations, times, and text from other
//! processes made safe for a terminal or for Markdown. A leaf: it imports nothing of ours.

use std::time::Duration;

/// Remove control and bidirectional-override characters from text read from other processes.
pub fn sanitize(s: &str) -> String {
    s.chars().map(safe_char).collect()
}

fn safe_char(c: char) -> char {
    if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
        '?'
    } else {
        c
    }
}

/// `s` cut to at most `max` characters: a longer one keeps its first `max - 1` and ends in `…`.
/// Reads only what it keeps, so its cost does not grow with `s`.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let mut ends = s.char_indices().map(|(i, _)| i).skip(max.saturating_sub(1));
    match (ends.next(), ends.next()) {
        // More than `max` characters: keep those before the `max`th, then `…`.
        (Some(cut), Some(_)) => format!("{}…", &s[..cut]).into(),
        _ => s.into(),
    }
}

/// [`sanitize`]d and [`truncate`]d to `max` characters, in time linear in `max` whatever the
/// length of `s`: how text from files and processes reaches a table or a line.
pub fn clip(s: &str, max: usize) -> String {
    truncate(s, max).chars().map(safe_char).collect()
}

/// Text from logs, registries and processes, safe inside Markdown: control characters and
/// newlines gone (no fake headings, list items or table rows), and every character Markdown
/// or HTML could read as syntax backslash-escaped (no links, raw HTML, ticked checkboxes, table
/// breaks or emphasis).
pub fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in sanitize(&s.replace(['\n', '\r'], " ")).chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '['
                | ']'
                | '<'
                | '>'
                | '|'
                | '#'
                | '~'
                | '!'
                | '&'
                | '{'
                | '}'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text in a Markdown code span: backticks cannot close it early, newlines cannot end the line.
pub fn md_code(s: &str) -> String {
    let clean = sanitize(&s.replace(['\n', '\r'], " ")).replace('`', "'");
    format!("`{}`", clean.replace('|', "\\|"))
}

/// A time in local time, as logs and `ps` show it: `2026-01-05 23:13:25`.
pub fn local_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Sizes as `ps`-reading humans expect: 8.0 GiB, 512.0 MiB, 4 KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Durations the way an operator reads them: 45s, 12m03s, 8h49m, 3d04h.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Parse durations given on the command line: `300`, `90s`, `5m`, `1h`, `1.5m`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = s.strip_suffix('d') {
        (n, 86400.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 2s, 5m, 1h)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid duration {s:?}: must be zero or positive"));
    }
    // Every deadline and window is an Instant or a date plus this: bounded, nothing overflows.
    if v * mult > MAX_DURATION.as_secs_f64() {
        return Err(format!("invalid duration {s:?}: at most 365d"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// The longest duration any flag takes.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// `126549` as `126,549`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_from_untrusted_text_stays_text() {
        let evil = "w1\n## Root cause: <img src=x onerror=alert(1)> | - [x] done `code` **b**";
        let t = md_text(evil);
        assert!(!t.contains('\n'));
        // Every character Markdown could read as syntax comes escaped.
        let chars: Vec<char> = t.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                i += 2;
                continue;
            }
            assert!(
                !"`*_[]<>|#~!&{}".contains(chars[i]),
                "unescaped {:?} in {t}",
                chars[i]
            );
            i += 1;
        }
        assert!(t.contains("\\<img") && t.contains("\\[x\\]"), "{t}");
        let c = md_code("a`b|c\x1b[31m");
        assert_eq!(c, "`a'b\\|c?[31m`");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        for bad in ["1e20", "1e20s", "366d", "inf", "NaN", "-1s", "soon"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(126_549), "126,549");
        assert_eq!(thousands(318), "318");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(8_588_378_112), "8.0 GiB");
        assert_eq!(duration(Duration::from_secs(45)), "45s");
        assert_eq!(duration(Duration::from_secs(723)), "12m03s");
        assert_eq!(
            duration(Duration::from_secs(8 * 3600 + 49 * 60 + 23)),
            "8h49m"
        );
        assert_eq!(duration(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d04h");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn clip_keeps_at_most_max_characters_and_says_it_cut() {
        assert_eq!(clip("mlx-server-v3-1", 15), "mlx-server-v3-1");
        assert_eq!(clip("mlx-server-v3-12", 15), "mlx-server-v3-…");
        assert_eq!(clip("ééé\x1b", 4), "ééé?");
        assert_eq!(clip("ééé\x1bx", 4), "ééé…");
        assert_eq!(clip("", 4), "");
        let c = clip(&"w".repeat(64 << 20), 256);
        assert_eq!(c.chars().count(), 256);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn sanitizes_terminal_escapes() {
        assert_eq!(sanitize("mlx\x1b[31mred\u{202e}"), "mlx?[31mred?");
        assert_eq!(sanitize("mlx-server-v3-1"), "mlx-server-v3-1");
    }
}
