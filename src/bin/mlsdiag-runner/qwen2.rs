//! The reference generation loop: Qwen2 in mlx-rs, with a KV cache, dense or 4/8-bit quantized
//! weights, and seeded temperature / top-p sampling.
//!
//! It runs the same MLX kernels a Python MLX server runs (quantized matmul, RoPE, fused
//! attention, RMS norm), so a hang in MLX's scheduler or a kernel can be reproduced without the
//! server around it. Sampling happens on the host from the last position's logits with a
//! ChaCha generator seeded per request, so the same prompt and seed give the same tokens on
//! every machine.

use std::collections::HashMap;
use std::ops::ControlFlow;

use anyhow::{Context, Result, anyhow};
use mlx_rs::fast::ScaledDotProductAttentionMask;
use mlx_rs::{Array, ops};
use rand::{Rng, SeedableRng};

use mlsdiag::repro::checkpoint::{Checkpoint, ModelConfig, Quantization};

/// A linear layer, dense or quantized (packed u32 weight with per-group scales and biases).
struct Linear {
    weight: Array,
    quantized: Option<(Array, Array, Quantization)>,
    bias: Option<Array>,
}

impl Linear {
    fn load(
        weights: &mut HashMap<String, Array>,
        prefix: &str,
        quantization: Option<Quantization>,
        with_bias: bool,
    ) -> Result<Linear> {
        let mut take = |name: &str| {
            weights
                .remove(&format!("{prefix}.{name}"))
                .ok_or_else(|| anyhow!("tensor {prefix}.{name} is missing"))
        };
        let weight = take("weight")?;
        let quantized = match quantization {
            Some(q) => Some((take("scales")?, take("biases")?, q)),
            None => None,
        };
        let bias = if with_bias { Some(take("bias")?) } else { None };
        Ok(Linear {
            weight,
            quantized,
            bias,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        let y = match &self.quantized {
            Some((scales, biases, q)) => ops::quantized_matmul(
                x,
                &self.weight,
                scales,
                biases,
                true,
                q.group_size as i32,
                q.bits as i32,
            )?,
            None => ops::matmul(x, self.weight.t())?,
        };
        Ok(match &self.bias {
            Some(b) => y.add(b)?,
            None => y,
        })
    }

    /// Rows of the matrix as embeddings (the embedding table is a linear layer's weight).
    fn rows(&self, ids: &Array) -> Result<Array> {
        let rows = self.weight.take_axis(ids, 0)?;
        Ok(match &self.quantized {
            Some((scales, biases, q)) => ops::dequantize(
                &rows,
                scales.take_axis(ids, 0)?,
                &biases.take_axis(ids, 0)?,
                q.group_size as i32,
                q.bits as i32,
            )?,
            None => rows,
        })
    }
}

struct Layer {
    input_norm: Array,
    post_attention_norm: Array,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Keys and values of every layer so far, `[1, kv_heads, positions, head_dim]` each.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<(Array, Array)>>,
    positions: i32,
}

impl KvCache {
    #[cfg(test)]
    pub fn positions(&self) -> usize {
        self.positions as usize
    }
}

/// A loaded Qwen2 model.
pub struct Qwen2 {
    config: ModelConfig,
    embed: Linear,
    layers: Vec<Layer>,
    norm: Array,
    lm_head: Option<Linear>,
}

impl Qwen2 {
    pub fn load(checkpoint: &Checkpoint) -> Result<Qwen2> {
        let mut w = crate::mlx::load_weights(checkpoint)?;
        let config = checkpoint.config.clone();
        let q = config.quantization;
        let embed = Linear::load(&mut w, "model.embed_tokens", q, false)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut norm = |name: &str| {
                w.remove(&format!("{p}.{name}.weight"))
                    .ok_or_else(|| anyhow!("tensor {p}.{name}.weight is missing"))
            };
            let input_norm = norm("input_layernorm")?;
            let post_attention_norm = norm("post_attention_layernorm")?;
            layers.push(Layer {
                input_norm,
                post_attention_norm,
                q: Linear::load(&mut w, &format!("{p}.self_attn.q_proj"), q, true)?,
                k: Linear::load(&mut w, &format!("{p}.self_attn.k_proj"), q, true)?,
                v: Linear::load(&mut w, &format!("{p}.self_attn.v_proj"), q, true)?,
                o: Linear::load(&mut w, &format!("{p}.self_attn.o_proj"), q, false)?,
                gate: Linear::load(&mut w, &format!("{p}.mlp.gate_proj"), q, false)?,
                up: Linear::load(&mut w, &format!("{p}.mlp.up_proj"), q, false)?,
                down: Linear::load(&mut w, &format!("{p}.mlp.down_proj"), q, false)?,
            });
        }
        let norm = w
            .remove("model.norm.weight")
            .ok_or_else(|| anyhow!("tensor model.norm.weight is missing"))?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(Linear::load(&mut w, "lm_head", q, false)?)
        };
        Ok(Qwen2 {
            config,
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    /// Runs `tokens` through the model after the cached positions and returns the logits of
    /// the last position, evaluated, as host floats.
    pub fn step(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let logits = self.forward(&Array::from_slice(tokens, &[tokens.len() as i32]), cache)?;
        logits.eval()?;
        Ok(logits.as_slice::<f32>().to_vec())
    }

    /// Fills the cache with `prompt` except its last token, computing only what the cache
    /// needs (MLX is lazy: the last layer's MLP and the logits of these positions are never
    /// evaluated), as mlx-lm does. The last token then goes through [`Qwen2::step`].
    fn prefill<'p>(&self, prompt: &'p [u32], cache: &mut KvCache) -> Result<&'p [u32]> {
        let Some((last, head)) = prompt.split_last() else {
            anyhow::bail!("the prompt has no tokens")
        };
        if !head.is_empty() {
            self.forward(&Array::from_slice(head, &[head.len() as i32]), cache)?;
            let state: Vec<&Array> = cache
                .layers
                .iter()
                .flatten()
                .flat_map(|(k, v)| [k, v])
                .collect();
            mlx_rs::transforms::eval(state)?;
        }
        Ok(std::slice::from_ref(last))
    }

    /// The graph of [`Qwen2::step`] on token ids already in MLX (1-D), not evaluated: the
    /// logits of the last position as f32. The cache advances as if it had run.
    fn forward(&self, ids: &Array, cache: &mut KvCache) -> Result<Array> {
        let c = &self.config;
        let (heads, kv_heads, head_dim) = (
            c.num_attention_heads as i32,
            c.kv_heads() as i32,
            c.head_dim() as i32,
        );
        let len = ids.size() as i32;
        cache.layers.resize_with(self.layers.len(), || None);
        let mut h = self
            .embed
            .rows(ids)?
            .reshape(&[1, len, c.hidden_size as i32])?;
        let scale = 1.0 / (head_dim as f32).sqrt();
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let x = mlx_rs::fast::rms_norm(&h, Some(&layer.input_norm), c.rms_norm_eps)?;
            let split = |a: Array, n: i32| -> Result<Array> {
                Ok(a.reshape(&[1, len, n, head_dim])?
                    .transpose_axes(&[0, 2, 1, 3])?)
            };
            let rope = |a: &Array| {
                mlx_rs::fast::rope(a, head_dim, false, c.rope_theta, 1.0, cache.positions, None)
            };
            let q = rope(&split(layer.q.forward(&x)?, heads)?)?;
            let mut k = rope(&split(layer.k.forward(&x)?, kv_heads)?)?;
            let mut v = split(layer.v.forward(&x)?, kv_heads)?;
            if let Some((past_k, past_v)) = slot.take() {
                k = ops::concatenate(&[past_k, k], 2)?;
                v = ops::concatenate(&[past_v, v], 2)?;
            }
            let mask = (len > 1).then_some(ScaledDotProductAttentionMask::Causal);
            let attn = mlx_rs::fast::scaled_dot_product_attention(&q, &k, &v, scale, mask, None)?;
            *slot = Some((k, v));
            let attn = attn
                .transpose_axes(&[0, 2, 1, 3])?
                .reshape(&[1, len, heads * head_dim])?;
            h = h.add(layer.o.forward(&attn)?)?;
            let x = mlx_rs::fast::rms_norm(&h, Some(&layer.post_attention_norm), c.rms_norm_eps)?;
            let gated =
                mlx_rs::nn::silu(layer.gate.forward(&x)?)?.multiply(layer.up.forward(&x)?)?;
            h = h.add(layer.down.forward(&gated)?)?;
        }
        cache.positions += len;
        let last = h.take_axis(Array::from_int(len - 1), 1)?;
        let last = mlx_rs::fast::rms_norm(&last, Some(&self.norm), c.rms_norm_eps)?;
        // Tied embeddings: the embedding table is the output projection.
        let logits = self
            .lm_head
            .as_ref()
            .unwrap_or(&self.embed)
            .forward(&last)?;
        Ok(logits.as_type::<f32>()?.reshape(&[-1])?)
    }
}

/// How to pick each token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of tokens whose probability reaches `top_p`.
    pub top_p: f32,
    pub seed: u64,
    pub max_tokens: usize,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            max_tokens: 64,
        }
    }
}

/// Picks a token from `logits`; `rng` advances once per sampled token.
pub fn sample(logits: &[f32], sampling: &Sampling, rng: &mut rand_chacha::ChaCha8Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l - max) / sampling.temperature).exp()))
        .collect();
    let total: f32 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // Keep the nucleus: tokens until the cumulative probability reaches top_p.
    let mut kept = 0;
    let mut mass = 0.0;
    for p in &probs {
        kept += 1;
        mass += p.1;
        if mass >= sampling.top_p {
            break;
        }
    }
    let draw = rng.random::<f32>() * mass;
    let mut acc = 0.0;
    for p in &probs[..kept] {
        acc += p.1;
        if draw < acc {
            return p.0;
        }
    }
    probs[kept - 1].0
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Eos,
    MaxTokens,
    /// The token callback asked to stop.
    Stopped,
}

/// Generates from `prompt` until EOS, `max_tokens`, or `on_token` breaks; every new token is
/// passed to `on_token` as soon as it exists (the watchdog's progress signal).
pub fn generate(
    model: &Qwen2,
    prompt: &[u32],
    is_eos: impl Fn(u32) -> bool,
    sampling: &Sampling,
    mut on_token: impl FnMut(u32) -> ControlFlow<()>,
) -> Result<(Vec<u32>, Finish)> {
    anyhow::ensure!(!prompt.is_empty(), "the prompt has no tokens");
    if sampling.temperature <= 0.0 {
        return greedy(model, prompt, is_eos, sampling.max_tokens, on_token);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut cache = KvCache::default();
    let mut out = Vec::new();
    let last = model.prefill(prompt, &mut cache).context("prompt")?;
    let mut logits = model.step(last, &mut cache).context("prompt")?;
    while out.len() < sampling.max_tokens {
        let token = sample(&logits, sampling, &mut rng);
        if is_eos(token) {
            return Ok((out, Finish::Eos));
        }
        out.push(token);
        if on_token(token).is_break() {
            return Ok((out, Finish::Stopped));
        }
        if out.len() < sampling.max_tokens {
            logits = model.step(&[token], &mut cache)?;
        }
    }
    Ok((out, Finish::MaxTokens))
}

/// Greedy decoding with the argmax on the device and one step queued ahead, as mlx-lm does:
/// the graph of step n+1 is built and handed to MLX (`async_eval`) before token n is read
/// back, so building and computing overlap. The tokens are those of [`sample`] at
/// temperature 0.
fn greedy(
    model: &Qwen2,
    prompt: &[u32],
    is_eos: impl Fn(u32) -> bool,
    max_tokens: usize,
    mut on_token: impl FnMut(u32) -> ControlFlow<()>,
) -> Result<(Vec<u32>, Finish)> {
    let mut cache = KvCache::default();
    let mut out = Vec::new();
    if max_tokens == 0 {
        return Ok((out, Finish::MaxTokens));
    }
    let argmax = |logits: Array| -> Result<Array> {
        Ok(ops::indexing::argmax_axis(&logits, 0, true)?.as_type::<u32>()?)
    };
    let last = model.prefill(prompt, &mut cache).context("prompt")?;
    let ids = Array::from_slice(last, &[1]);
    let mut next = argmax(model.forward(&ids, &mut cache).context("prompt")?)?;
    mlx_rs::transforms::async_eval([&next])?;
    loop {
        let current = next;
        // Queue the next step on the lazy token, unless this one is the last allowed.
        let queued = if out.len() + 1 < max_tokens {
            let n = argmax(model.forward(&current, &mut cache)?)?;
            mlx_rs::transforms::async_eval([&n])?;
            Some(n)
        } else {
            None
        };
        let token = current.try_item_exact::<u32>()?;
        if is_eos(token) {
            return Ok((out, Finish::Eos));
        }
        out.push(token);
        if on_token(token).is_break() {
            return Ok((out, Finish::Stopped));
        }
        match queued {
            Some(n) => next = n,
            None => return Ok((out, Finish::MaxTokens)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyModel, write_checkpoint};
    use mlsdiag::repro::checkpoint::Quantization;

    fn model(tiny: &TinyModel) -> (tempfile::TempDir, Qwen2) {
        let dir = tempfile::tempdir().unwrap();
        write_checkpoint(dir.path(), tiny).unwrap();
        let model = Qwen2::load(&Checkpoint::open(dir.path()).unwrap()).unwrap();
        (dir, model)
    }

    fn run(model: &Qwen2, sampling: &Sampling) -> Vec<u32> {
        let prompt = [10, 20, 30, 40, 50];
        generate(
            model,
            &prompt,
            |_| false,
            sampling,
            |_| ControlFlow::Continue(()),
        )
        .unwrap()
        .0
    }

    #[test]
    fn the_kv_cache_gives_the_logits_of_a_full_recompute() {
        let (_dir, m) = model(&TinyModel::default());
        let tokens = [3, 1, 4, 1, 5, 9, 2, 6];
        let mut full = KvCache::default();
        let whole = m.step(&tokens, &mut full).unwrap();
        let mut cached = KvCache::default();
        m.step(&tokens[..5], &mut cached).unwrap();
        m.step(&tokens[5..7], &mut cached).unwrap();
        let last = m.step(&tokens[7..], &mut cached).unwrap();
        assert_eq!(cached.positions(), 8);
        let diff = whole
            .iter()
            .zip(&last)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "max logit difference {diff}");
    }

    #[test]
    fn the_same_prompt_and_seed_give_the_same_tokens() {
        let (_dir, m) = model(&TinyModel::default());
        let sampled = Sampling {
            temperature: 0.9,
            top_p: 0.95,
            seed: 42,
            max_tokens: 24,
        };
        let a = run(&m, &sampled);
        assert_eq!(a.len(), 24);
        assert_eq!(a, run(&m, &sampled));
        let other_seed = run(
            &m,
            &Sampling {
                seed: 43,
                ..sampled
            },
        );
        assert_ne!(a, other_seed, "a different seed samples differently");
        let greedy = Sampling::default();
        assert_eq!(run(&m, &greedy), run(&m, &greedy));
    }

    #[test]
    fn pipelined_greedy_gives_the_tokens_of_step_by_step_argmax() {
        let (_dir, m) = model(&TinyModel::default());
        let greedy = Sampling {
            max_tokens: 20,
            ..Sampling::default()
        };
        let pipelined = run(&m, &greedy);
        let mut cache = KvCache::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut logits = m.step(&[10, 20, 30, 40, 50], &mut cache).unwrap();
        let mut host = Vec::new();
        for _ in 0..20 {
            let t = sample(&logits, &greedy, &mut rng);
            host.push(t);
            logits = m.step(&[t], &mut cache).unwrap();
        }
        assert_eq!(pipelined, host);
        // (EOS through this path: generation_stops_at_eos_and_when_told.)
        let none = Sampling {
            max_tokens: 0,
            ..greedy
        };
        assert!(run(&m, &none).is_empty());
    }

    #[test]
    fn quantized_weights_generate_tokens() {
        for (bits, group_size) in [(4, 64), (8, 32)] {
            let tiny = TinyModel {
                quantization: Some(Quantization { group_size, bits }),
                ..TinyModel::default()
            };
            let (_dir, m) = model(&tiny);
            let tokens = run(
                &m,
                &Sampling {
                    max_tokens: 8,
                    ..Sampling::default()
                },
            );
            assert_eq!(tokens.len(), 8, "{bits}-bit");
            assert!(tokens.iter().all(|&t| (t as usize) < m.config.vocab_size));
        }
    }

    #[test]
    fn eight_bit_weights_compute_what_the_dense_weights_compute() {
        // The same seed writes the same dense values; the 8-bit model quantizes them.
        let (_d, dense) = model(&TinyModel::default());
        let (_q, quantized) = model(&TinyModel {
            quantization: Some(Quantization {
                group_size: 32,
                bits: 8,
            }),
            ..TinyModel::default()
        });
        let tokens = [7, 70, 170, 17];
        let a = dense.step(&tokens, &mut KvCache::default()).unwrap();
        let b = quantized.step(&tokens, &mut KvCache::default()).unwrap();
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        let cosine = dot(&a, &b) / (dot(&a, &a).sqrt() * dot(&b, &b).sqrt());
        assert!(cosine > 0.99, "cosine similarity of the logits {cosine}");
    }

    #[test]
    fn generation_stops_at_eos_and_when_told() {
        let (_dir, m) = model(&TinyModel::default());
        let greedy = Sampling::default();
        let free = run(&m, &greedy);
        let eos = free[3];
        let first = free.iter().position(|&t| t == eos).unwrap();
        let (out, finish) = generate(
            &m,
            &[10, 20, 30, 40, 50],
            |t| t == eos,
            &greedy,
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!((out.as_slice(), finish), (&free[..first], Finish::Eos));
        let mut seen = 0;
        let (out, finish) = generate(
            &m,
            &[10, 20, 30, 40, 50],
            |_| false,
            &greedy,
            |_| {
                seen += 1;
                if seen == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert_eq!((out.len(), finish), (2, Finish::Stopped));
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let logits = [0.0, 5.0, 4.9, -3.0];
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 0.5,
            ..Sampling::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            assert_eq!(sample(&logits, &sampling, &mut rng), 1);
        }
        let wide = Sampling {
            top_p: 1.0,
            ..sampling
        };
        let picks: std::collections::HashSet<u32> =
            (0..200).map(|_| sample(&logits, &wide, &mut rng)).collect();
        assert!(picks.contains(&1) && picks.contains(&2), "{picks:?}");
    }
}
