#!/usr/bin/env python3
"""A six-worker deployment of real Python processes for `scripts/bench-check`.

  tests/workers/bench_deployment.py DIR

Starts six workers whose command lines match `mlx-server-v3-bench`: two busy (a thread
spinning), two idle (blocked on a pipe read), one hung (two threads deadlocked on two locks,
its last request in flight in the log), one leaking (8 MiB kept every 0.1 s, capped at
512 MiB). Writes DIR/worker_registry.json listing them and DIR/mls.log with 160 requests
since they started (Python logging's layout; the hung worker's last one never completed, so
`check --hung-after 1s` calls it hung). Prints one JSON line
(pattern, registry, log, pids) when everything is in place, then waits: closing its stdin (or
SIGTERM) ends every worker.
"""
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

WORKER = r"""
import sys, threading, time
role = sys.argv[1]
if role == "busy":
    def spin():
        x = 0
        while True:
            x += 1
    threading.Thread(target=spin, daemon=True).start()
    sys.stdin.read()
elif role == "idle":
    sys.stdin.read()
elif role == "hung":
    a, b = threading.Lock(), threading.Lock()
    def one():
        with a:
            time.sleep(0.2)
            with b:
                pass
    def two():
        with b:
            time.sleep(0.2)
            with a:
                pass
    t1 = threading.Thread(target=one); t2 = threading.Thread(target=two)
    t1.start(); t2.start(); t1.join()
elif role == "leaking":
    kept = []
    while len(kept) < 64:
        kept.append(bytearray(8 << 20))
        time.sleep(0.1)
    sys.stdin.read()
"""

ROLES = ["busy", "busy", "idle", "idle", "hung", "leaking"]


def stamp(t):
    return t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    procs = []

    def stop(*_):
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    started = datetime.now().astimezone()
    workers = []
    for i, role in enumerate(ROLES, 1):
        name = f"mlx-server-v3-bench-{i}"
        p = subprocess.Popen(
            [sys.executable, "-c", WORKER, role, name],
            stdin=subprocess.PIPE,
        )
        procs.append(p)
        workers.append({"pid": p.pid, "name": name, "model": "bench/tiny", "role": role,
                        "spawned_at": started.isoformat()})
    registry = os.path.join(out, "worker_registry.json")
    with open(registry + ".tmp", "w") as f:
        json.dump({"workers": [{k: v for k, v in w.items() if k != "role"} for w in workers]}, f)
    os.replace(registry + ".tmp", registry)
    # 160 requests across the six workers since they started, every one completed but the hung
    # worker's last, which is still in flight: with `--hung-after 1s` it proves the hang.
    log = os.path.join(out, "mls.log")
    t = datetime.now() + timedelta(milliseconds=100)
    lines = []
    for n in range(160):
        w = workers[n % len(workers)]
        tag = f"worker={w['name']} pid={w['pid']} id=r{n}"
        lines.append(f"{stamp(t)} - mls.api - INFO - Chat completion request: {tag} prompt_chars=8400 max_tokens=2000 temperature=0.3\n")
        if not (w["role"] == "hung" and n >= 154):
            done = t + timedelta(milliseconds=3)
            lines.append(f"{stamp(done)} - mls.api - INFO - Chat completion: 380 tokens in 0.003s (31.7 tok/s) {tag}\n")
        t += timedelta(milliseconds=5)
    with open(log, "w") as f:
        f.writelines(lines)
    time.sleep(1.5)  # the in-flight request ages past --hung-after 1s; the locks are taken
    print(json.dumps({"pattern": "mlx-server-v3-bench", "registry": registry, "log": log,
                      "pids": [w["pid"] for w in workers]}), flush=True)
    sys.stdin.read()
    stop()


if __name__ == "__main__":
    main()
