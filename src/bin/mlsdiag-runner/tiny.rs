//! Tiny Qwen2 checkpoints made in code: random seeded weights, a byte-level BPE tokenizer with
//! ChatML special tokens, and a ChatML chat template. The reference loop is tested (and
//! benchmarked) on these, so no model is downloaded and every run sees the same files.

use std::path::Path;

use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use mlsdiag::repro::checkpoint::{ModelConfig, Quantization};

/// ChatML, the conversation format of Qwen2 models; unknown roles are refused as the real
/// templates do.
pub const CHATML_TEMPLATE: &str = "{%- for m in messages -%}\
{%- if m.role not in ['system', 'user', 'assistant'] -%}\
{{ raise_exception('unknown role ' ~ m.role) }}\
{%- endif -%}\
<|im_start|>{{ m.role }}{{ '\\n' }}{{ m.content }}<|im_end|>{{ '\\n' }}\
{%- endfor -%}\
{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}";

pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// The shape of a tiny model.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyModel {
    pub hidden_size: usize,
    pub layers: usize,
    pub intermediate_size: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub quantization: Option<Quantization>,
    pub seed: u64,
}

impl Default for TinyModel {
    fn default() -> TinyModel {
        TinyModel {
            hidden_size: 64,
            layers: 2,
            intermediate_size: 128,
            heads: 4,
            kv_heads: 2,
            quantization: None,
            seed: 7,
        }
    }
}

/// 256 byte symbols, a few merges, then the special tokens.
fn tokenizer() -> anyhow::Result<Tokenizer> {
    let mut symbols: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    symbols.sort_unstable();
    let mut vocab: Vocab = symbols
        .iter()
        .enumerate()
        .map(|(id, c)| (c.to_string(), id as u32))
        .collect();
    // Merges for common English pairs, so multi-byte tokens are exercised.
    let merges: Vec<(String, String)> = [("t", "h"), ("th", "e"), ("i", "n"), ("e", "r")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    for (a, b) in &merges {
        let id = vocab.len() as u32;
        vocab.insert(format!("{a}{b}"), id);
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| anyhow::anyhow!("tiny tokenizer: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| anyhow::anyhow!("tiny tokenizer: {e}"))?;
    Ok(tokenizer)
}

/// The config.json of `model` (vocabulary sized to the tiny tokenizer, rounded up).
pub fn config(model: &TinyModel, vocab_size: usize) -> ModelConfig {
    ModelConfig {
        model_type: "qwen2".into(),
        hidden_size: model.hidden_size,
        num_hidden_layers: model.layers,
        intermediate_size: model.intermediate_size,
        num_attention_heads: model.heads,
        num_key_value_heads: Some(model.kv_heads),
        vocab_size,
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000.0,
        tie_word_embeddings: true,
        quantization: model.quantization,
        eos_token_id: None,
    }
}

/// Writes a complete checkpoint directory for `model` into `dir` (created if missing).
pub fn write_checkpoint(dir: &Path, model: &TinyModel) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tokenizer = tokenizer()?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow::anyhow!("tiny tokenizer: {e}"))?;
    let vocab_size = tokenizer.get_vocab_size(true).div_ceil(64) * 64;
    let config = config(model, vocab_size);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    let tokenizer_config = serde_json::json!({
        "chat_template": CHATML_TEMPLATE,
        "eos_token": "<|im_end|>",
        "bos_token": null,
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tokenizer_config)?,
    )?;
    crate::mlx::write_random_weights(&config, &dir.join("model.safetensors"), model.seed)
}
