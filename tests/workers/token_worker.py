"""A real MLX worker using the mlsdiag Python module (python/mlsdiag), for the progress tests.

    token_worker.py MODEL_DIR STATE_DIR MODE TAG

It loads the tiny checkpoint scripts/setup-mlx-lm made, enables mlsdiag (token progress record
and faulthandler in STATE_DIR), writes STATE_DIR/worker_registry.json naming both, and
generates with mlx_lm.stream_generate through the module's wrapper. After 20 tokens of the
second generation it does what MODE says, inside MLX's generation loop (a logits processor):

  working   nothing: keeps generating (max_tokens large), a long legitimate generation
  deadlock  two threads take two locks in opposite order: a real deadlock, tokens stop, CPU idle
  spin      a busy loop on the CPU: tokens stop, CPU at 100%
  consumer  the loop consuming the tokens stops asking for more (a client not reading)

STATE_DIR/injected is written just before the injection; TAG only makes the command line unique
for `--pattern`.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

import mlsdiag  # noqa: E402
import mlx_lm  # noqa: E402


def deadlock():
    a, b = threading.Lock(), threading.Lock()
    a.acquire()
    holding_b = threading.Event()

    def other():
        with b:
            holding_b.set()
            a.acquire()  # never: the main thread holds a

    threading.Thread(target=other, daemon=True).start()
    holding_b.wait()
    b.acquire()  # never: the other thread holds b


def spin():
    x = 0
    while True:
        x = (x * 31 + 7) % 1000003


def main():
    model_dir, state, mode, _tag = sys.argv[1:5]
    model, tokenizer = mlx_lm.load(model_dir)
    diag = mlsdiag.enable(state)
    entry = {"pid": os.getpid(), "name": f"token-worker-{mode}", "model": "tiny"}
    entry.update(diag.registry_fields())
    tmp = os.path.join(state, "worker_registry.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"workers": [entry]}, f)
    os.rename(tmp, os.path.join(state, "worker_registry.json"))
    # One short generation first: the record then shows one finished.
    for _ in diag.stream_generate(model, tokenizer, "warm up", max_tokens=8, request_id="req-1"):
        pass
    # The injection runs inside MLX's generation loop (a logits processor, called by
    # generate_step for every token), not in the consumer below: mid-generation.
    steps = [0]
    n = 0

    def inject(tokens, logits):
        steps[0] += 1
        if steps[0] == 20 and mode in ("deadlock", "spin"):
            open(os.path.join(state, "injected"), "w").close()
            deadlock() if mode == "deadlock" else spin()
        return logits

    for _ in diag.stream_generate(
        model,
        tokenizer,
        "tell a long story",
        max_tokens=10_000_000,
        request_id="req-2",
        logits_processors=[inject],
    ):
        n += 1
        if mode == "working":
            time.sleep(0.002)  # a steady stream, leaving the 2-core test machine some CPU
        if mode == "consumer" and n == 20:
            # The consumer stops asking for tokens (a client that stopped reading).
            open(os.path.join(state, "injected"), "w").close()
            time.sleep(3600)


if __name__ == "__main__":
    main()
