//! What `mlsdiag repro --model` and its child `mlsdiag-runner serve` say to each other: one JSON
//! object per line, requests on the runner's stdin and events on its stdout.
//!
//! The generation runs in a child because MLX work cannot be cancelled in-process: a hung
//! `eval` can only be ended by ending its process. One token event per generated token is the
//! watchdog's progress signal, so a stall is seen to within a read timeout.

use serde::{Deserialize, Serialize};

/// One run, parent → runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The campaign's run number (0-based).
    pub run: u64,
    /// Chat messages, rendered with the checkpoint's chat template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<serde_json::Value>,
    /// A raw prompt (completions style), encoded as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    /// Fault injection for tests: block forever after this many tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_after: Option<u64>,
}

/// Runner → parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The checkpoint is loaded; requests may follow.
    Ready {
        pid: u32,
        architecture: String,
        load_secs: f64,
    },
    /// A generated token.
    Token { id: u32 },
    /// The run ended normally.
    Done {
        run: u64,
        prompt_tokens: usize,
        tokens: u64,
        /// "eos" or "max_tokens".
        finish: String,
        secs: f64,
        text: String,
    },
    /// The run failed; the runner reads the next request.
    Error { run: u64, message: String },
}

impl Event {
    pub fn parse(line: &str) -> Result<Event, String> {
        serde_json::from_str(line).map_err(|e| format!("bad line from the runner ({e}): {line:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_tagged_lines() {
        let e = Event::Token { id: 7 };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(line, r#"{"event":"token","id":7}"#);
        assert_eq!(Event::parse(&line).unwrap(), e);
    }

    #[test]
    fn garbage_is_named() {
        let err = Event::parse("Traceback (most recent call last)").unwrap_err();
        assert!(err.contains("Traceback"), "{err}");
        assert!(Event::parse(r#"{"event":"nope"}"#).is_err());
    }

    #[test]
    fn request_omits_unset_fields() {
        let r = RunRequest {
            run: 3,
            messages: None,
            prompt: Some("hi".into()),
            max_tokens: 8,
            temperature: 0.0,
            top_p: 1.0,
            seed: 3,
            hang_after: None,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            !line.contains("hang_after") && !line.contains("messages"),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<RunRequest>(&line).unwrap(), r);
    }
}
