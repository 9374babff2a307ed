"""An MLX worker on a GPU (MLX's CUDA backend), for the GPU experiment that
scripts/gpu-experiment runs on the lent H200 (docs/gpu.md); CI does not run it.

    gpu_worker.py MODE STATE_DIR

It enables the mlsdiag Python module (token progress record in STATE_DIR) and writes:
  STATE_DIR/reg-tokens.json  a registry entry naming the record (mlsdiag reads tokens first),
  STATE_DIR/reg-plain.json   the same entry without it (only CPU, GPU and the log to go by),
  STATE_DIR/mls.log          an MLS log line: the request in flight.
Then, with the generation begun ("a request in flight"):
  gpu-eval  back-to-back evals of a chain of 8192x8192 matmuls (seconds each, the GPU busy and
            the host CPU idle), one token recorded per eval: long legitimate GPU work;
  gpu-spin  a few small evals (tokens), then one mx.fast.cuda_kernel launch that never ends:
            the GPU busy, the host asleep in the wait, no token ever again;
  gpu-poll  the same, the kernel polling a flag in device memory that is never set (the
            shape of a fence wait that is never signalled, mlx#3830 / mlx#3142).
STATE_DIR/ready is written once the first token is recorded.
"""

import datetime
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import mlsdiag  # noqa: E402
import mlx.core as mx  # noqa: E402


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    mode, state = sys.argv[1], sys.argv[2]
    os.makedirs(state, exist_ok=True)
    diag = mlsdiag.enable(state)
    name = f"gpu-worker-{mode}"
    entry = {"pid": os.getpid(), "name": name, "model": "none (matmul chain)"}
    write(os.path.join(state, "reg-plain.json"), json.dumps({"workers": [entry]}))
    entry.update(diag.registry_fields())
    write(os.path.join(state, "reg-tokens.json"), json.dumps({"workers": [entry]}))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    write(
        os.path.join(state, "mls.log"),
        f"{now} Chat completion request: worker={name} id=req-{mode} prompt_chars=100000\n",
    )
    diag.begin(f"req-{mode}")
    if mode == "gpu-eval":
        a = mx.random.normal((8192, 8192))
        mx.eval(a)
        while True:
            x = a
            for _ in range(900):
                x = (x @ a) * 1e-4
            mx.eval(x)
            diag.token()
            if not os.path.exists(os.path.join(state, "ready")):
                write(os.path.join(state, "ready"), "")
    elif mode in ("gpu-spin", "gpu-poll"):
        for _ in range(5):
            mx.eval(mx.random.normal((1024, 1024)) @ mx.random.normal((1024, 1024)))
            diag.token()
        write(os.path.join(state, "ready"), "")
        spin = """
                auto elem = cooperative_groups::this_grid().thread_rank();
                volatile float* o = out;
                float v = inp[elem];
                while (true) { v = v * 1.0000001f + 1.0f; o[elem] = v; }
            """
        # `inp` is all ones: the flag it waits for (zero) never comes.
        poll = """
                auto elem = cooperative_groups::this_grid().thread_rank();
                volatile const float* flag = inp;
                while (flag[0] != 0.0f) { }
                out[elem] = flag[0];
            """
        kernel = mx.fast.cuda_kernel(
            name="spin_forever" if mode == "gpu-spin" else "poll_forever",
            input_names=["inp"],
            output_names=["out"],
            source=spin if mode == "gpu-spin" else poll,
        )
        a = mx.ones((1024,))
        out = kernel(
            inputs=[a],
            grid=(1024, 1, 1),
            threadgroup=(256, 1, 1),
            output_shapes=[a.shape],
            output_dtypes=[a.dtype],
        )[0]
        mx.eval(out)  # never returns
        diag.token()
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
