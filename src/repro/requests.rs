//! The requests `repro` replays, read from the operator's files: OpenAI chat-completion bodies
//! one JSON object per line (what `record` and a server's request log give), or one prompt.

use std::path::Path;

/// Requests to replay: OpenAI chat-completion bodies, one JSON object per line, or one prompt.
pub fn load(
    prompt: Option<&Path>,
    requests: Option<&Path>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if let Some(p) = prompt {
        let text = crate::input::read_to_string(p, crate::input::SMALL_FILE_LIMIT)?;
        return Ok(vec![
            serde_json::json!({"messages": [{"role": "user", "content": text}]}),
        ]);
    }
    let Some(p) = requests else {
        anyhow::bail!("give --prompt FILE or --requests FILE.jsonl")
    };
    let text = crate::input::read_to_string(p, crate::input::RECORDING_LIMIT)?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", p.display(), i + 1))?;
        anyhow::ensure!(
            v.get("messages").is_some_and(|m| m.is_array()) || v.get("prompt").is_some(),
            "{}:{}: a request needs \"messages\" (chat) or \"prompt\"",
            p.display(),
            i + 1
        );
        out.push(v);
    }
    anyhow::ensure!(!out.is_empty(), "{}: no requests", p.display());
    Ok(out)
}
