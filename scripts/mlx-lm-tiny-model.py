#!/usr/bin/env python3
"""Writes a tiny random Llama model directory that `mlx_lm.server --model DIR` can serve.

    target/mlx-lm-venv/bin/python scripts/mlx-lm-tiny-model.py OUT_DIR

Run with the venv made by scripts/setup-mlx-lm (needs mlx, mlx-lm, tokenizers, transformers).
Nothing is downloaded: the weights are random (seeded, so the output is reproducible), the
tokenizer is a byte-level BPE trained here on a few lines of text, and the model is checked by
loading it back with mlx_lm.load and generating a few tokens with HF_HUB_OFFLINE=1.

What it writes in OUT_DIR:
  config.json            a tiny llama (hidden 64, 2 layers, 4 heads, vocab 384, tied embeddings)
  model.safetensors      its parameters, saved by mx.save_safetensors under mlx_lm's key names
  tokenizer.json         byte-level BPE (any generated id decodes to valid text)
  tokenizer_config.json  PreTrainedTokenizerFast, bos/eos/pad tokens, and a ChatML chat_template
  generation_config.json eos_token_id
  special_tokens_map.json, chat_template.jinja (as transformers saves them, if it does)

The embedding rows of the special tokens (EOS among them) and of the non-printable byte tokens
are zero, so their logits are exactly 0 while the max over the random others is positive: at
temperature 0 (the server's default) the output is printable ASCII and never stops early, so a
request runs for its whole max_tokens (how a test makes a request "busy").
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import mlx.core as mx  # noqa: E402
from mlx.utils import tree_flatten, tree_map  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from mlx_lm.models import llama  # noqa: E402

VOCAB_SIZE = 384
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
EOS = "<|im_end|>"

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "rms_norm_eps": 1e-5,
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 131072,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "bos_token_id": 0,
    "eos_token_id": 2,
}

# ChatML; the generation prompt is added when the server asks for it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you today? I am fine, thank you.",
    "A worker serves requests; the diagnosis reads its log and its process table.",
    "system user assistant: say hello, count to ten, tell me a story about a server.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    "Prompt processing progress, tokens per second, peak memory, cache hits and misses.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
]


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    return tok


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    vocab = tok.get_vocab_size()
    if vocab > VOCAB_SIZE:
        raise SystemExit(f"tokenizer has {vocab} tokens, more than the model's {VOCAB_SIZE}")
    eos_id = tok.token_to_id(EOS)
    assert eos_id == CONFIG["eos_token_id"], eos_id

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token=EOS,
        pad_token="<|endoftext|>",
        model_max_length=CONFIG["max_position_embeddings"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    # Keep the template and class in tokenizer_config.json too, whatever this transformers
    # version splits out, so any AutoTokenizer finds them.
    cfg_path = out / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text())
    tcfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    tcfg["chat_template"] = CHAT_TEMPLATE
    tcfg["eos_token"] = EOS
    cfg_path.write_text(json.dumps(tcfg, indent=2) + "\n")

    (out / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 0, "eos_token_id": eos_id}, indent=2) + "\n"
    )

    # Random matrices, large enough that greedy decoding wanders instead of repeating one
    # token (the norms' weights stay 1).
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(CONFIG))
    model.update(tree_map(lambda w: mx.random.normal(w.shape) * 0.5 if w.ndim == 2 else w,
                          model.parameters()))
    # Zero the (tied) embedding rows of every token that may not be generated: the specials
    # (EOS among them) and the byte tokens that are not printable ASCII. Their logits are then
    # exactly 0, below the maximum of the others, so greedy output is printable ASCII text that
    # never ends before max_tokens.
    printable = [
        i not in (tok.token_to_id(s) for s in SPECIALS)
        and (text := tok.decode([i])) != ""
        and all(" " <= c <= "~" for c in text)
        for i in range(VOCAB_SIZE)
    ]
    embed = model.model.embed_tokens.weight
    model.model.embed_tokens.weight = embed * mx.array(printable)[:, None]
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})

    # Load it back the way the server does and generate, to prove the directory is complete.
    from mlx_lm import generate, load

    m, t = load(str(out))
    prompt = t.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True
    )
    text = generate(m, t, prompt=prompt, max_tokens=16, verbose=False)
    print(f"mlx-lm-tiny-model: wrote {out} ({len(weights)} tensors, vocab {vocab}); "
          f"sample: {text!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
