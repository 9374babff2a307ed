"""A real orchestrator that respawns its workers under their names, as MLS does after the seed's
remedy ("kill worker, spawn fresh one"). Used by tests/cli/watch.rs.

    python3 respawning_orchestrator.py serve DIR TAG

Writes DIR/worker_registry.json (atomically: a temporary file, then rename) and DIR/mls.log in
the MLS format. Two workers, `python3 respawning_orchestrator.py worker TAG NAME MODE`:

  w-hung  first incarnation deadlocks (two locks, 0% CPU) on request req-1, for which the
          orchestrator logs only timeouts, never an end;
  w-idle  serves request req-2 and sleeps.

The log names workers by `worker=` only, never `pid=`, and logs no spawn or exit lines: the
hardest case, where only the process start time tells a fresh worker from the one the request
was sent to. When a worker exits, it is respawned at once in mode `idle`, and the orchestrator
prints `respawned NAME OLD_PID NEW_PID` on stdout. It prints `ready` once the registry and
the log are written. SIGTERM ends it and its workers.
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time


def worker(mode):
    if mode == "hang":
        a, b = threading.Lock(), threading.Lock()
        a.acquire()

        def other():
            b.acquire()
            a.acquire()

        threading.Thread(target=other, daemon=True).start()
        time.sleep(0.05)
        b.acquire()  # both threads now wait forever
    while True:
        time.sleep(1)


def serve(d, tag):
    log = open(os.path.join(d, "mls.log"), "a", buffering=1)

    def line(level, msg):
        now = datetime.datetime.now()
        log.write(f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d} - mls.api - {level} - {msg}\n")

    procs = {}

    def spawn(name, mode):
        p = subprocess.Popen([sys.executable, __file__, "worker", tag, name, mode])
        procs[name] = (p, time.time())
        return p

    def registry():
        path = os.path.join(d, "worker_registry.json")
        entries = [
            {"name": n, "pid": p.pid, "spawned_at": t, "model": "tiny"}
            for n, (p, t) in sorted(procs.items())
        ]
        with open(path + ".tmp", "w") as f:
            json.dump({"workers": entries}, f)
        os.rename(path + ".tmp", path)

    def stop(*_):
        for p, _t in procs.values():
            p.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    spawn("w-hung", "hang")
    spawn("w-idle", "idle")
    registry()
    time.sleep(0.1)
    line("INFO", "Chat completion request: worker=w-hung id=req-1 prompt_chars=8489 max_tokens=2000")
    line("INFO", "Chat completion request: worker=w-idle id=req-2 prompt_chars=120 max_tokens=20")
    line("INFO", "Chat completion: 20 tokens in 0.5s (40.0 tok/s) worker=w-idle id=req-2")
    print("ready", flush=True)
    last_timeout = time.time()
    while True:
        time.sleep(0.05)
        for name, (p, _t) in list(procs.items()):
            if p.poll() is not None:
                new = spawn(name, "idle")
                registry()
                print(f"respawned {name} {p.pid} {new.pid}", flush=True)
        if time.time() - last_timeout >= 1:
            # The orchestrator keeps giving up on req-1; no end is ever logged for it.
            line("ERROR", "Worker timeout after 1s worker=w-hung id=req-1")
            last_timeout = time.time()


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker(sys.argv[4])
    else:
        serve(sys.argv[2], sys.argv[3])
