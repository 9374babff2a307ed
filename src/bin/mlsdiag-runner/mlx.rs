//! The MLX side of the reference loop (cargo feature `mlx`): weights into MLX arrays.
//!
//! Kept apart from `checkpoint` so that everything which is not an MLX call (file layout,
//! config checks, the tensor list) builds and is tested without MLX.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::Array;

use mlsdiag::error::InputError;
use mlsdiag::repro::checkpoint::{Checkpoint, ModelConfig, tensor_problems};

/// mlx-rs seeds its default random state from Mach's `mach_approximate_time`, which exists only
/// on Apple platforms; elsewhere the same role is played by wall-clock nanoseconds.
#[cfg(not(target_vendor = "apple"))]
#[unsafe(no_mangle)]
pub extern "C" fn mach_approximate_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Loads every weight file of `checkpoint` and checks the tensors against what the Qwen2 loop
/// needs; an error names the checkpoint and every missing or misshapen tensor.
pub fn load_weights(checkpoint: &Checkpoint) -> Result<HashMap<String, Array>, InputError> {
    let mut weights = HashMap::new();
    for file in &checkpoint.weight_files {
        let tensors = Array::load_safetensors(file).map_err(|e| InputError::BadFile {
            path: file.clone(),
            message: format!("cannot load as safetensors: {e}"),
        })?;
        weights.extend(tensors);
    }
    let expected = checkpoint.config.expected_tensors();
    let problems = tensor_problems(&expected, |name| weights.get(name).map(|a| a.shape()));
    if !problems.is_empty() {
        let shown = problems.len().min(5);
        return Err(InputError::BadFile {
            path: checkpoint.dir.clone(),
            message: format!(
                "{} tensor problem(s): {}{}",
                problems.len(),
                problems[..shown].join("; "),
                if problems.len() > shown { "; ..." } else { "" }
            ),
        });
    }
    Ok(weights)
}

/// Writes random weights for `config` to `path` (one safetensors file), quantized as the
/// config says; the tiny checkpoints of the tests and the benchmark are made this way, so no
/// download is needed. The same seed writes the same weights.
pub fn write_random_weights(config: &ModelConfig, path: &Path, seed: u64) -> anyhow::Result<()> {
    let dense = ModelConfig {
        quantization: None,
        ..config.clone()
    };
    let mut tensors: Vec<(String, Array)> = Vec::new();
    for (index, t) in dense.expected_tensors().into_iter().enumerate() {
        // One key per tensor, derived from the seed and the tensor's place in the list.
        let key = mlx_rs::random::key(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64)?;
        let values = mlx_rs::random::normal::<f32>(t.shape.as_slice(), None, 0.02, &key)?;
        let prefix = t.name.strip_suffix(".weight");
        match (config.quantization, prefix) {
            (Some(q), Some(prefix)) if t.shape.len() == 2 => {
                let (packed, scales, biases) =
                    mlx_rs::ops::quantize(&values, q.group_size as i32, q.bits as i32)?;
                tensors.push((t.name.clone(), packed));
                tensors.push((format!("{prefix}.scales"), scales));
                tensors.push((format!("{prefix}.biases"), biases));
            }
            _ => tensors.push((t.name, values)),
        }
    }
    Array::save_safetensors(tensors.iter().map(|(n, a)| (n.as_str(), a)), None, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENIZER_CONFIG: &str =
        r#"{"chat_template": "{{ messages }}", "eos_token": "<|im_end|>"}"#;

    fn tiny_config(quantization: &str) -> String {
        format!(
            r#"{{"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
            "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 300, "tie_word_embeddings": true, "quantization": {quantization}}}"#
        )
    }

    fn tiny_checkpoint(quantization: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_config(quantization);
        std::fs::write(dir.path().join("config.json"), &config).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), TOKENIZER_CONFIG).unwrap();
        let config: ModelConfig = serde_json::from_str(&config).unwrap();
        write_random_weights(&config, &dir.path().join("model.safetensors"), 7).unwrap();
        dir
    }

    #[test]
    fn random_quantized_weights_round_trip_through_mlx() {
        for quantization in [
            "null",
            r#"{"group_size": 64, "bits": 4}"#,
            r#"{"group_size": 32, "bits": 8}"#,
        ] {
            let dir = tiny_checkpoint(quantization);
            let checkpoint = Checkpoint::open(dir.path()).unwrap();
            let weights = load_weights(&checkpoint).unwrap();
            let embed = &weights["model.embed_tokens.weight"];
            match checkpoint.config.quantization {
                Some(q) => {
                    assert_eq!(embed.shape(), &[300, 64 * q.bits as i32 / 32]);
                    assert_eq!(embed.dtype(), mlx_rs::Dtype::Uint32);
                }
                None => assert_eq!(embed.dtype(), mlx_rs::Dtype::Float32),
            }
        }
    }

    #[test]
    fn the_same_seed_writes_the_same_weights() {
        let a = tiny_checkpoint("null");
        let b = tiny_checkpoint("null");
        let read =
            |d: &tempfile::TempDir| std::fs::read(d.path().join("model.safetensors")).unwrap();
        assert_eq!(read(&a), read(&b));
    }

    #[test]
    fn a_checkpoint_with_the_wrong_weights_names_the_tensors() {
        let dir = tiny_checkpoint("null");
        // Declare 3 layers over weights written for 2.
        let config =
            tiny_config("null").replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        let err = load_weights(&checkpoint).unwrap_err().to_string();
        assert!(err.contains("model.layers.2."), "{err}");
        assert!(err.contains("is missing"), "{err}");

        std::fs::write(dir.path().join("model.safetensors"), "not safetensors").unwrap();
        let err = load_weights(&checkpoint).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("cannot load"),
            "{err}"
        );
    }
}
