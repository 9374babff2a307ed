//! From a captured chat request to token ids, as the server did it: the checkpoint's chat
//! template (minijinja, with Python string methods as Hugging Face templates use them) and its
//! `tokenizer.json` (the tokenizers crate). A replay is only faithful if the model sees the
//! same tokens the server fed it.

use minijinja::{Environment, context};

use mlsdiag::error::InputError;
use mlsdiag::repro::checkpoint::Checkpoint;

/// The template, tokenizer and stop tokens of one checkpoint.
pub struct Prompter {
    tokenizer: tokenizers::Tokenizer,
    env: Environment<'static>,
    has_template: bool,
    bos_token: String,
    eos_token: String,
    eos_ids: Vec<u32>,
}

const TEMPLATE: &str = "chat";

impl Prompter {
    pub fn open(checkpoint: &Checkpoint) -> Result<Prompter, InputError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(&checkpoint.tokenizer_json).map_err(|e| {
                InputError::BadFile {
                    path: checkpoint.tokenizer_json.clone(),
                    message: format!("not a tokenizer.json this tool can read: {e}"),
                }
            })?;
        let tc = &checkpoint.tokenizer_config;
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<(), minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        let has_template = tc.chat_template.is_some();
        if let Some(template) = &tc.chat_template {
            env.add_template_owned(TEMPLATE, template.clone())
                .map_err(|e| InputError::BadFile {
                    path: checkpoint.dir.join("tokenizer_config.json"),
                    message: format!("chat_template does not parse: {e}"),
                })?;
        }
        let mut eos_ids: Vec<u32> = checkpoint
            .config
            .eos_token_id
            .as_ref()
            .map(|e| e.ids())
            .unwrap_or_default();
        let eos_token = tc.eos_token.clone().unwrap_or_default();
        if let Some(id) = tokenizer.token_to_id(&eos_token)
            && !eos_ids.contains(&id)
        {
            eos_ids.push(id);
        }
        if eos_ids.is_empty() {
            return Err(InputError::BadFile {
                path: checkpoint.dir.join("tokenizer_config.json"),
                message: "no end-of-sequence token: neither eos_token (tokenizer_config.json) nor \
                          eos_token_id (config.json) names one the tokenizer knows"
                    .into(),
            });
        }
        Ok(Prompter {
            tokenizer,
            env,
            has_template,
            bos_token: tc.bos_token.clone().unwrap_or_default(),
            eos_token,
            eos_ids,
        })
    }

    /// The prompt text for an OpenAI-style `messages` array, ending where the assistant's
    /// answer starts (`add_generation_prompt`). Without a template the contents are joined.
    pub fn render(&self, messages: &serde_json::Value) -> anyhow::Result<String> {
        let list = messages
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("messages must be an array"))?;
        if !self.has_template {
            let parts: Vec<&str> = list.iter().filter_map(|m| m["content"].as_str()).collect();
            return Ok(parts.join("\n"));
        }
        let template = self.env.get_template(TEMPLATE)?;
        Ok(template.render(context! {
            messages => minijinja::Value::from_serialize(messages),
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })?)
    }

    /// Token ids of rendered text; special tokens written in the text (`<|im_start|>`) are
    /// recognised, none are added, because the template already wrote them.
    pub fn encode(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> anyhow::Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny;

    #[test]
    fn a_chat_renders_through_the_template_and_round_trips_through_the_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write_checkpoint(dir.path(), &tiny::TinyModel::default()).unwrap();
        let prompter = Prompter::open(&Checkpoint::open(dir.path()).unwrap()).unwrap();
        let messages = serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Why is the worker at 0% CPU?"}
        ]);
        let text = prompter.render(&messages).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhy is the worker at 0% CPU?\
             <|im_end|>\n<|im_start|>assistant\n"
        );
        let ids = prompter.encode(&text).unwrap();
        let im_end = ids.iter().filter(|&&id| prompter.is_eos(id)).count();
        assert_eq!(im_end, 2, "<|im_end|> is one special token: {ids:?}");
        assert_eq!(
            prompter.decode(&ids).unwrap(),
            "system\nBe brief.\nuser\nWhy is the worker at 0% CPU?\nassistant\n"
        );
    }

    #[test]
    fn the_template_s_own_errors_reach_the_user() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write_checkpoint(dir.path(), &tiny::TinyModel::default()).unwrap();
        let prompter = Prompter::open(&Checkpoint::open(dir.path()).unwrap()).unwrap();
        let err = prompter
            .render(&serde_json::json!([{"role": "robot", "content": "x"}]))
            .unwrap_err();
        assert!(format!("{err:#}").contains("unknown role robot"), "{err:#}");
        assert!(
            prompter
                .render(&serde_json::json!({"role": "user"}))
                .is_err()
        );
    }

    #[test]
    fn a_broken_tokenizer_or_template_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write_checkpoint(dir.path(), &tiny::TinyModel::default()).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 3}").unwrap();
        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        let err = Prompter::open(&checkpoint).err().unwrap().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");

        tiny::write_checkpoint(dir.path(), &tiny::TinyModel::default()).unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"chat_template": "{% for m in messages %}", "eos_token": "<|im_end|>"}"#,
        )
        .unwrap();
        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        let err = Prompter::open(&checkpoint).err().unwrap().to_string();
        assert!(
            err.contains("tokenizer_config.json") && err.contains("chat_template"),
            "{err}"
        );
    }
}
