"""Tokens/s of mlsdiag's reference MLX loop (mlsdiag-runner) against Python's mlx_lm on the
same checkpoints, the same chat prompt, greedy decoding, on this machine. Run by
scripts/bench-repro, which builds the runner, writes the checkpoints and prepares the venv
(mlx-lm) this runs in; it rewrites the "repro" section of docs/benchmarks.md.

Both sides are timed the same way, with time.perf_counter() in this process: the runner's
token events as they arrive on its stdout pipe (so the Rust side also pays the pipe and JSON),
and the tokens mlx_lm.stream_generate yields. Per run:
  decode tok/s     = (tokens - 1) / (last token - first token)
  first token      = first token - request sent                  (template, tokenizer, prefill)
  end-to-end tok/s = tokens / (last token - request sent)
Each repeat starts a runner and loads the model in Python once, runs one warm-up request on
each, then RUNS measured requests on each, alternating Rust and Python by repeat. Reported:
medians over all measured runs, and their ratios.

usage: bench-repro.py RUNNER MAX_TOKENS RUNS REPEATS NAME=DIR...
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time


def rust(runner, model, prompt, max_tokens, runs):
    # As `mlsdiag repro` starts its runners: one BLAS thread each unless the caller says.
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    p = subprocess.Popen(
        [runner, "serve", "--model", model],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    ready = json.loads(p.stdout.readline())
    assert ready["event"] == "ready", ready
    results, first_ids = [], None
    for run in range(runs + 1):
        request = {
            "run": run,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "top_p": 1.0,
            "seed": 0,
        }
        sent = time.perf_counter()
        p.stdin.write(json.dumps(request) + "\n")
        p.stdin.flush()
        stamps, ids = [], []
        while True:
            event = json.loads(p.stdout.readline())
            if event["event"] == "token":
                stamps.append(time.perf_counter())
                ids.append(event["id"])
            elif event["event"] == "done":
                break
            else:
                raise SystemExit(f"runner: {event}")
        if run == 0:
            first_ids = ids
            continue  # warm-up
        results.append(rates(sent, stamps))
    p.stdin.close()
    p.wait(timeout=30)
    return results, first_ids


def python(model_dir, prompt, max_tokens, runs):
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(model_dir)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    sampler = make_sampler(temp=0.0)
    results, first_ids = [], None
    for run in range(runs + 1):
        sent = time.perf_counter()
        stamps, out = [], []
        for r in stream_generate(
            model, tokenizer, ids, max_tokens=max_tokens, sampler=sampler
        ):
            stamps.append(time.perf_counter())
            out.append(int(r.token))
            if r.finish_reason is not None:
                break
        # mlx_lm yields the EOS token it stops at; the runner does not emit it.
        if out and out[-1] in tokenizer.eos_token_ids:
            out.pop()
            stamps.pop()
        if run == 0:
            first_ids = out
            continue
        results.append(rates(sent, stamps))
    return results, first_ids, len(ids)


def rates(sent, stamps):
    n = len(stamps)
    return {
        "tokens": n,
        "end_to_end": n / (stamps[-1] - sent) if n else 0.0,
        "decode": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0,
        "first_token_ms": (stamps[0] - sent) * 1000 if n else 0.0,
    }


def median(results, key):
    return statistics.median(r[key] for r in results)


PROMPT = "Tell me a story about a dragon who guards a library."


def measure(runner, model, max_tokens, runs, repeats):
    rust_runs, py_runs, same, prompt_tokens = [], [], True, 0
    for repeat in range(repeats):
        sides = ["rust", "python"] if repeat % 2 == 0 else ["python", "rust"]
        ids = {}
        for side in sides:
            if side == "rust":
                r, ids["rust"] = rust(runner, model, PROMPT, max_tokens, runs)
                rust_runs += r
            else:
                p, ids["python"], prompt_tokens = python(model, PROMPT, max_tokens, runs)
                py_runs += p
        same = same and ids["rust"] == ids["python"]
    return rust_runs, py_runs, same, prompt_tokens


def main():
    runner, max_tokens, runs, repeats = sys.argv[1:5]
    max_tokens, runs, repeats = int(max_tokens), int(runs), int(repeats)
    rows, notes = [], []
    for spec in sys.argv[5:]:
        name, model = spec.split("=", 1)
        config = json.load(open(os.path.join(model, "config.json")))
        q = config.get("quantization")
        shape = (
            f"hidden {config['hidden_size']}, {config['num_hidden_layers']} layers, "
            f"MLP {config['intermediate_size']}, {config['num_attention_heads']}/"
            f"{config['num_key_value_heads']} heads, vocab {config['vocab_size']}, "
            + (f"{q['bits']}-bit (group {q['group_size']})" if q else "float32")
        )
        r, p, same, prompt_tokens = measure(runner, model, max_tokens, runs, repeats)
        for label, key, unit in [
            ("decode", "decode", "tok/s"),
            ("first token", "first_token_ms", "ms"),
            ("end-to-end", "end_to_end", "tok/s"),
        ]:
            rm, pm = median(r, key), median(p, key)
            # For times, lower is better: the ratio is Python's time over Rust's.
            ratio = pm / rm if unit == "ms" else rm / pm
            rows.append(
                f"| {name} | {label} | {rm:,.1f} {unit} | {pm:,.1f} {unit} | **{ratio:.2f}×** |"
            )
        notes.append(
            f"- `{name}`: {shape}; prompt {prompt_tokens} tokens, {median(r, 'tokens'):.0f} "
            f"generated; greedy tokens identical to mlx_lm's: **{'yes' if same else 'NO'}**."
        )
    when = time.strftime("%Y-%m-%d")
    section = f"""## repro: the reference MLX loop vs mlx_lm

Command: `scripts/bench-repro {max_tokens} {runs} {repeats}` ({when}, {platform.system()} {platform.release()}, {os.cpu_count()} cores, MLX {mlx_version()} CPU).
Same checkpoint, same chat prompt (\"{PROMPT}\"), greedy, `max_tokens` {max_tokens}; {repeats} repeats × {runs} measured runs
(after a warm-up run) per side, alternating which side goes first; medians over all measured runs. The baseline is
Python's `mlx_lm.stream_generate` (mlx-lm {mlx_lm_version()}) timed in the same process that reads the runner's pipe.
Ratio = Rust ÷ Python for tok/s, Python ÷ Rust for time: above 1 means the Rust loop is faster.

| checkpoint | measure | mlsdiag-runner | mlx_lm (baseline) | ratio |
|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join(notes)}
- Decode: per-token time is MLX's kernels and scheduling on both sides (the same libmlx); the loop adds no measurable
  cost. Prefill: the runner, like mlx-lm, evaluates only the KV cache for all but the last prompt token.
"""
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.md")
    text = open(bench).read() if os.path.exists(bench) else "# Benchmarks\n\n"
    text = re.sub(r"## repro: .*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n\n" + section
    with open(bench, "w") as f:
        f.write(text)
    print(section)


def mlx_version():
    import mlx.core

    return mlx.core.__version__


def mlx_lm_version():
    from importlib.metadata import version

    return version("mlx-lm")


if __name__ == "__main__":
    main()
