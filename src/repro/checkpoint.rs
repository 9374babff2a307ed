//! The MLX-format checkpoint directory `repro --model DIR` loads, checked before any MLX work.
//!
//! An mlx-lm conversion (`mlx_lm.convert`) writes `config.json`, one `model.safetensors` or
//! shards listed in `model.safetensors.index.json`, `tokenizer.json` and
//! `tokenizer_config.json` (with the chat template). A campaign that dies an hour in on a
//! missing shard wastes the hour, so everything is resolved here first, and each problem is an
//! error naming the file and what is wrong with it. Only the Qwen2 family (the incident's
//! `Qwen2.5-14B-Instruct-4bit`) is supported; other architectures are refused by name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// Architectures the reference loop implements (`model_type` in config.json).
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["qwen2"];

/// Weight quantization, as mlx-lm writes it into config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    pub group_size: u32,
    pub bits: u32,
}

/// The hyper-parameters of a Qwen2 model (config.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_type: String,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention; equal to `num_attention_heads` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    pub vocab_size: usize,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f32,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// A single id or a list; the tokenizer config may add more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<EosIds>,
}

fn default_rms_norm_eps() -> f32 {
    1e-6
}

fn default_rope_theta() -> f32 {
    1_000_000.0
}

/// `eos_token_id` is an integer in some configs and a list in others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EosIds {
    One(u32),
    Many(Vec<u32>),
}

impl EosIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            EosIds::One(id) => vec![*id],
            EosIds::Many(ids) => ids.clone(),
        }
    }
}

impl ModelConfig {
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The checks the loop relies on, as one message naming every broken field.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !SUPPORTED_MODEL_TYPES.contains(&self.model_type.as_str()) {
            out.push(format!(
                "model_type \"{}\" is not supported (supported: {})",
                self.model_type,
                SUPPORTED_MODEL_TYPES.join(", ")
            ));
        }
        for (name, value) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
        ] {
            if value == 0 {
                out.push(format!("{name} is 0"));
            }
        }
        if self.num_attention_heads > 0
            && !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            out.push(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv.max(1)) {
            out.push(format!(
                "num_key_value_heads {kv} does not divide num_attention_heads {}",
                self.num_attention_heads
            ));
        }
        if let Some(q) = self.quantization {
            if !matches!(q.bits, 4 | 8) {
                out.push(format!(
                    "quantization.bits {} is not supported (4 or 8)",
                    q.bits
                ));
            }
            if !matches!(q.group_size, 32 | 64 | 128) {
                out.push(format!(
                    "quantization.group_size {} is not supported (32, 64 or 128)",
                    q.group_size
                ));
            }
        }
        out
    }
}

/// One tensor the checkpoint must hold, with the shape the loop needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTensor {
    pub name: String,
    pub shape: Vec<i32>,
}

impl ModelConfig {
    /// Every tensor of a Qwen2 checkpoint as mlx-lm names it. A quantized matrix `[out, in]`
    /// is stored packed as `weight` `[out, in * bits / 32]` (u32) plus per-group `scales` and
    /// `biases` `[out, in / group_size]`; norms and attention biases stay unquantized.
    pub fn expected_tensors(&self) -> Vec<ExpectedTensor> {
        let h = self.hidden_size as i32;
        let kv = (self.kv_heads() * self.head_dim()) as i32;
        let i = self.intermediate_size as i32;
        let v = self.vocab_size as i32;
        let mut out = Vec::new();
        let mut dense = |name: String, shape: Vec<i32>| out.push(ExpectedTensor { name, shape });
        let matrix =
            |prefix: String, rows: i32, cols: i32, out: &mut Vec<ExpectedTensor>| match self
                .quantization
            {
                Some(q) => {
                    let packed = cols * q.bits as i32 / 32;
                    let groups = cols / q.group_size as i32;
                    for (part, width) in
                        [("weight", packed), ("scales", groups), ("biases", groups)]
                    {
                        out.push(ExpectedTensor {
                            name: format!("{prefix}.{part}"),
                            shape: vec![rows, width],
                        });
                    }
                }
                None => out.push(ExpectedTensor {
                    name: format!("{prefix}.weight"),
                    shape: vec![rows, cols],
                }),
            };
        let mut matrices = Vec::new();
        matrix("model.embed_tokens".into(), v, h, &mut matrices);
        for layer in 0..self.num_hidden_layers {
            let p = format!("model.layers.{layer}");
            for (name, rows, cols) in [
                ("self_attn.q_proj", h, h),
                ("self_attn.k_proj", kv, h),
                ("self_attn.v_proj", kv, h),
                ("self_attn.o_proj", h, h),
                ("mlp.gate_proj", i, h),
                ("mlp.up_proj", i, h),
                ("mlp.down_proj", h, i),
            ] {
                matrix(format!("{p}.{name}"), rows, cols, &mut matrices);
            }
            for (name, len) in [
                ("self_attn.q_proj.bias", h),
                ("self_attn.k_proj.bias", kv),
                ("self_attn.v_proj.bias", kv),
                ("input_layernorm.weight", h),
                ("post_attention_layernorm.weight", h),
            ] {
                dense(format!("{p}.{name}"), vec![len]);
            }
        }
        dense("model.norm.weight".into(), vec![h]);
        if !self.tie_word_embeddings {
            matrix("lm_head".into(), v, h, &mut matrices);
        }
        out.extend(matrices);
        out
    }
}

/// Compares what a checkpoint holds (`name -> shape`) with what the loop needs: every missing
/// tensor and every wrong shape, named; extra tensors are ignored as mlx-lm ignores them.
pub fn tensor_problems<'a>(
    expected: &[ExpectedTensor],
    found: impl Fn(&str) -> Option<&'a [i32]>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for t in expected {
        match found(&t.name) {
            None => problems.push(format!("tensor {} is missing", t.name)),
            Some(shape) if shape != t.shape.as_slice() => problems.push(format!(
                "tensor {} has shape {shape:?}, expected {:?}",
                t.name, t.shape
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The subset of tokenizer_config.json the loop uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenizerConfig {
    pub chat_template: Option<String>,
    #[serde(default, deserialize_with = "token_text")]
    pub eos_token: Option<String>,
    #[serde(default, deserialize_with = "token_text")]
    pub bos_token: Option<String>,
}

/// Special tokens are a string or an `{"content": ...}` object, depending on the exporter.
fn token_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Token {
        Text(String),
        Added { content: String },
    }
    Ok(Option::<Token>::deserialize(d)?.map(|t| match t {
        Token::Text(s) | Token::Added { content: s } => s,
    }))
}

/// A checkpoint directory whose files all exist and parse.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    /// The safetensors files holding the weights, in a stable order.
    pub weight_files: Vec<PathBuf>,
    pub tokenizer_json: PathBuf,
    pub tokenizer_config: TokenizerConfig,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

fn bad(path: &Path, message: impl Into<String>) -> InputError {
    InputError::BadFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text =
        crate::input::read_to_string(path, crate::input::FORMAT_FILE_LIMIT * 64).map_err(|e| {
            match e {
                InputError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    bad(path, "missing from the checkpoint directory")
                }
                e => e,
            }
        })?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON for this file: {e}")))
}

impl Checkpoint {
    /// Resolves and checks every file of `dir`; nothing is loaded into MLX yet.
    pub fn open(dir: &Path) -> Result<Checkpoint, InputError> {
        if !dir.is_dir() {
            return Err(bad(
                dir,
                "not a directory (expected an MLX checkpoint directory)",
            ));
        }
        let config_path = dir.join("config.json");
        let config: ModelConfig = read_json(&config_path)?;
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(bad(&config_path, problems.join("; ")));
        }
        let weight_files = weight_files(dir)?;
        let tokenizer_json = dir.join("tokenizer.json");
        if !tokenizer_json.is_file() {
            return Err(bad(
                &tokenizer_json,
                "missing from the checkpoint directory",
            ));
        }
        let tokenizer_config: TokenizerConfig = read_json(&dir.join("tokenizer_config.json"))?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            weight_files,
            tokenizer_json,
            tokenizer_config,
        })
    }
}

/// `model.safetensors.index.json` (sharded) wins over single files, as in mlx-lm; otherwise
/// every `model*.safetensors` in the directory.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.exists() {
        let index: ShardIndex = read_json(&index_path)?;
        if index.weight_map.is_empty() {
            return Err(bad(&index_path, "weight_map is empty"));
        }
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        let mut files = Vec::new();
        for shard in shards {
            if shard.contains('/') || shard.contains("..") {
                return Err(bad(
                    &index_path,
                    format!("shard name \"{shard}\" leaves the directory"),
                ));
            }
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(bad(
                    &index_path,
                    format!(
                        "lists shard \"{shard}\", which is missing from {}",
                        dir.display()
                    ),
                ));
            }
            files.push(path);
        }
        return Ok(files);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(InputError::io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("model") && n.ends_with(".safetensors"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad(
            dir,
            "no weights: neither model.safetensors.index.json nor model*.safetensors is present",
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 300, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": true, "eos_token_id": [1, 2],
        "quantization": {"group_size": 64, "bits": 4}}"#;
    const TOKENIZER_CONFIG: &str = r#"{"chat_template": "{{ messages }}",
        "eos_token": {"content": "<|im_end|>", "lstrip": false}, "bos_token": null}"#;

    fn checkpoint(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("config.json", CONFIG),
            ("model.safetensors", "x"),
            ("tokenizer.json", "{}"),
            ("tokenizer_config.json", TOKENIZER_CONFIG),
        ]
    }

    fn error(files: &[(&str, &str)]) -> String {
        let dir = checkpoint(files);
        Checkpoint::open(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn a_complete_quantized_qwen2_checkpoint_opens() {
        let dir = checkpoint(&complete());
        let c = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(
            c.config.quantization,
            Some(Quantization {
                group_size: 64,
                bits: 4
            })
        );
        assert_eq!((c.config.kv_heads(), c.config.head_dim()), (2, 16));
        assert_eq!(c.config.eos_token_id.as_ref().unwrap().ids(), vec![1, 2]);
        assert_eq!(c.tokenizer_config.eos_token.as_deref(), Some("<|im_end|>"));
        assert_eq!(c.weight_files, vec![dir.path().join("model.safetensors")]);
    }

    #[test]
    fn sharded_weights_follow_the_index() {
        let mut files = complete();
        files.retain(|(n, _)| *n != "model.safetensors");
        files.push((
            "model.safetensors.index.json",
            r#"{"weight_map": {"a": "model-00002-of-00002.safetensors",
                "b": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#,
        ));
        files.push(("model-00001-of-00002.safetensors", "x"));
        let dir = checkpoint(&files);
        let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("model.safetensors.index.json"), "{err}");
        assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
        std::fs::write(dir.path().join("model-00002-of-00002.safetensors"), "x").unwrap();
        let c = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(c.weight_files.len(), 2);
    }

    #[test]
    fn each_missing_file_is_named() {
        for missing in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            let mut files = complete();
            files.retain(|(n, _)| *n != missing);
            let err = error(&files);
            assert!(
                err.contains(missing) && err.contains("missing"),
                "{missing}: {err}"
            );
        }
        let mut files = complete();
        files.retain(|(n, _)| *n != "model.safetensors");
        assert!(error(&files).contains("no weights"));
    }

    #[test]
    fn other_architectures_and_broken_fields_are_refused_by_name() {
        let llama = CONFIG.replace("qwen2", "llama");
        let mut files = complete();
        files[0].1 = &llama;
        let err = error(&files);
        assert!(
            err.contains("config.json") && err.contains("\"llama\" is not supported"),
            "{err}"
        );

        let three_bit = CONFIG.replace("\"bits\": 4", "\"bits\": 3");
        files[0].1 = &three_bit;
        assert!(error(&files).contains("quantization.bits 3"));

        let odd_heads = CONFIG.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        files[0].1 = &odd_heads;
        assert!(error(&files).contains("num_key_value_heads 3"));

        files[0].1 = "{\"model_type\": \"qwen2\"";
        assert!(error(&files).contains("not valid JSON"));
    }

    fn config(text: &str) -> ModelConfig {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn quantized_matrices_are_packed_with_scales_and_biases() {
        let c = config(CONFIG);
        let tensors = c.expected_tensors();
        let shape = |name: &str| {
            tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.shape.clone())
        };
        // 4-bit, group 64: 64 inputs pack into 8 u32 and 1 group.
        assert_eq!(
            shape("model.layers.1.self_attn.k_proj.weight"),
            Some(vec![32, 8])
        );
        assert_eq!(
            shape("model.layers.1.self_attn.k_proj.scales"),
            Some(vec![32, 1])
        );
        assert_eq!(
            shape("model.layers.0.mlp.down_proj.biases"),
            Some(vec![64, 2])
        );
        assert_eq!(
            shape("model.layers.0.self_attn.k_proj.bias"),
            Some(vec![32])
        );
        assert_eq!(
            shape("lm_head.weight"),
            None,
            "tied embeddings have no lm_head"
        );
        // 2 layers x (7 matrices x 3 + 5 vectors) + embedding x 3 + final norm
        assert_eq!(tensors.len(), 2 * (7 * 3 + 5) + 3 + 1);

        let dense = config(
            &CONFIG
                .replace(
                    r#""quantization": {"group_size": 64, "bits": 4}"#,
                    r#""quantization": null"#,
                )
                .replace(
                    "\"tie_word_embeddings\": true",
                    "\"tie_word_embeddings\": false",
                ),
        );
        let tensors = dense.expected_tensors();
        assert!(
            tensors
                .iter()
                .any(|t| t.name == "lm_head.weight" && t.shape == vec![300, 64])
        );
        assert!(!tensors.iter().any(|t| t.name.ends_with(".scales")));
    }

    #[test]
    fn tensor_problems_name_missing_and_misshapen_tensors() {
        let expected = config(CONFIG).expected_tensors();
        let good: std::collections::HashMap<String, Vec<i32>> = expected
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        assert!(tensor_problems(&expected, |n| good.get(n).map(|s| s.as_slice())).is_empty());
        let mut bad = good.clone();
        bad.remove("model.norm.weight");
        bad.insert("model.layers.0.mlp.up_proj.weight".into(), vec![128, 64]);
        let problems = tensor_problems(&expected, |n| bad.get(n).map(|s| s.as_slice()));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p == "tensor model.norm.weight is missing")
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("up_proj.weight has shape [128, 64], expected [128, 8]"))
        );
    }

    #[test]
    fn shard_names_cannot_leave_the_directory() {
        let mut files = complete();
        files.push((
            "model.safetensors.index.json",
            r#"{"weight_map": {"a": "../elsewhere.safetensors"}}"#,
        ));
        assert!(error(&files).contains("leaves the directory"));
    }
}
