"""Unit tests of the worker module (standard library only; run by `cargo test` through
tests/cli/python.rs, or by hand: python3 -m unittest discover -s python/tests).

mlx-lm itself is replaced by a small fake package with the same entry points, so that what the
hooks count can be asserted token by token; tests/cli/run.rs runs the real mlx_lm.server."""

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

PYTHON = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, PYTHON)

import mlsdiag  # noqa: E402


def record(path):
    """The record's fields by name."""
    with open(path, "rb") as f:
        b = f.read()
    names = ("tokens", "last_token", "active_since", "request_tokens", "prompt_done",
             "prompt_total", "last_progress", "generations")
    r = dict(zip(names, struct.unpack_from("<QQQQQQQQ", b, 32)))
    r["request"] = b[96:120].rstrip(b"\0").decode()
    r["waiting"] = struct.unpack_from("<Q", b, 120)[0]
    return r


class Stderr:
    def __enter__(self):
        self.old, sys.stderr = sys.stderr, io.StringIO()
        return self

    def __exit__(self, *exc):
        self.text = sys.stderr.getvalue()
        sys.stderr = self.old


class StateDir(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mlsdiag-test-")
        self.old_base = mlsdiag.USER_STATE_BASE
        mlsdiag.USER_STATE_BASE = os.path.join(self.tmp, "base")
        os.mkdir(mlsdiag.USER_STATE_BASE)

    def tearDown(self):
        mlsdiag.USER_STATE_BASE = self.old_base

    def test_an_unusable_state_dir_is_a_warning_and_the_per_user_dir_the_fallback(self):
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)  # as another user's would be: mlsdiag would refuse it
        with Stderr() as err:
            d = mlsdiag.enable(state_dir=shared)
        self.assertIn("is not usable", err.text)
        self.assertEqual(os.path.dirname(d.progress_path), mlsdiag.user_state_dir())
        d.token(d.begin("r1"))
        self.assertEqual(record(d.progress_path)["tokens"], 1)
        self.assertEqual(set(d.registry_fields()), {"progress", "faulthandler"})
        d.close()

    def test_no_usable_dir_at_all_is_no_record_and_no_exception(self):
        open(mlsdiag.user_state_dir(), "w").close()  # a file where the directory should be
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)
        with Stderr() as err:
            d = mlsdiag.enable(state_dir=shared, watchdog=1)
            g = d.begin("r1")
            d.prompt_progress(1, 2, g)
            d.token(g, waiting=True)
            d.resumed(g)
            d.end(g)
            d.close()
        self.assertIn("no token record", err.text)
        self.assertIsNone(d.progress_path)
        self.assertEqual(d.registry_fields(), {})

    def test_records_of_gone_processes_are_pruned_from_the_per_user_dir(self):
        user = mlsdiag.user_state_dir()
        os.mkdir(user)
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
        for name in (f"progress-{gone}", f"faulthandler-{gone}.txt"):
            open(os.path.join(user, name), "w").close()
        with open(os.path.join(user, "faulthandler-999999998.txt"), "w") as f:
            f.write("Thread 0x1 (most recent call first):\n")  # evidence: kept
        d = mlsdiag.enable(state_dir=None)
        left = sorted(os.listdir(user))
        self.assertNotIn(f"progress-{gone}", left)
        self.assertNotIn(f"faulthandler-{gone}.txt", left)
        self.assertIn("faulthandler-999999998.txt", left)
        self.assertIn(f"progress-{os.getpid()}", left)
        d.close()


class Watchdog(unittest.TestCase):
    def test_a_stall_is_dumped_once_and_the_next_stall_again(self):
        tmp = tempfile.mkdtemp(prefix="mlsdiag-test-")
        with Stderr() as err:
            d = mlsdiag.enable(state_dir=tmp, stacks=False, watchdog=0.5)
            g = d.begin("req-stall")
            d.token(g)
            time.sleep(1.6)  # one stall, however long
            d.token(g)  # progress ends it
            time.sleep(1.6)  # the next stall
            d.end(g)
            time.sleep(1.0)  # no generation: nothing to dump
            d.close()
        with open(d.faulthandler_path) as f:
            dump = f.read()
        self.assertEqual(dump.count("mlsdiag watchdog: no progress"), 2, dump)
        self.assertEqual(dump.count("Timeout ("), 2, dump)
        self.assertIn("request req-stall", dump)
        self.assertIn("test_a_stall_is_dumped_once", dump)  # this thread's stack
        self.assertIn("mlsdiag watchdog", err.text)


FAKE_GENERATE = '''
class Response:
    def __init__(self, uid, token, finish_reason=None):
        self.uid, self.token, self.finish_reason = uid, token, finish_reason

def generate_step(prompt, model, max_tokens=5, prompt_progress_callback=None, **kw):
    if prompt_progress_callback:
        prompt_progress_callback(1, 2)
        prompt_progress_callback(2, 2)
    for i in range(max_tokens):
        yield i, None

def stream_generate(model, tokenizer, prompt, max_tokens=5, **kw):
    for t, _ in generate_step(prompt, model, max_tokens=max_tokens, **kw):
        yield t

class BatchGenerator:
    def __init__(self):
        self.uids, self.left = [], {}
    def insert_segments(self, segments, max_tokens=None):
        new = list(range(len(self.uids), len(self.uids) + len(segments)))
        for u, n in zip(new, max_tokens):
            self.left[u] = n
        self.uids += new
        return new
    def insert(self, prompts, max_tokens=None):
        return self.insert_segments([[p] for p in prompts], max_tokens)
    def _next(self):
        gen = []
        for u in list(self.left):
            self.left[u] -= 1
            gen.append(Response(u, 7, "length" if self.left[u] == 0 else None))
            if self.left[u] == 0:
                del self.left[u]
        return [], gen
    def next(self):
        return self._next()
    def remove(self, uids):
        for u in uids:
            self.left.pop(u, None)
    def close(self):
        self.left.clear()
'''

FAKE_SERVER = '''
import json, os, sys
from .generate import stream_generate

class ResponseGenerator:
    """The generation thread makes `made` tokens; the handler takes what it reads."""
    def generate(self, request, args, progress_callback=None):
        made = request["made"]
        def inner():
            if progress_callback:
                progress_callback(3, 3)
            # In the server the library's stream_generate runs on the generation thread:
            # its tokens are not delivery.
            for t in stream_generate(None, None, "p", max_tokens=made):
                yield t
            while request.get("livelock"):
                yield from ()
                return
        return object(), inner()

class APIHandler:
    def __init__(self, rid):
        self.request_id = rid
        self.response_generator = ResponseGenerator()
    def handle_completion(self, request, read):
        ctx, it = self.response_generator.generate(request, None, progress_callback=lambda d, t: None)
        taken = [t for _, t in zip(range(read), it)]
        return taken

def read_record():
    import mlsdiag._auto as a
    import struct
    b = open(a.diag().progress_path, "rb").read()
    tokens, _, active, req_tokens = struct.unpack_from("<QQQQ", b, 32)
    return {"tokens": tokens, "active": active != 0, "request_tokens": req_tokens,
            "generations": struct.unpack_from("<Q", b, 88)[0],
            "request": b[96:120].rstrip(b"\\0").decode()}

def main():
    out = {}
    h = APIHandler("chatcmpl-abc")
    h.handle_completion({"made": 9}, read=9)
    out["all_read"] = read_record()
    h.handle_completion({"made": 9}, read=4)  # the client left after 4: 4 delivered
    out["partly_read"] = read_record()
    # A request queued and never answered (a dead generation thread): in flight, no token.
    it = h.response_generator.generate({"made": 0, "livelock": True}, None)
    out["stuck"] = read_record()
    print(json.dumps(out))

if __name__ == "__main__":
    main()
'''


class AutoHooks(unittest.TestCase):
    """The import hooks of `mlsdiag run`, on a fake mlx_lm, as `python` and `python -m`."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mlsdiag-test-")
        pkg = os.path.join(self.tmp, "fake", "mlx_lm")
        os.makedirs(pkg)
        for name, text in (("__init__.py", ""), ("generate.py", FAKE_GENERATE),
                           ("server.py", FAKE_SERVER)):
            with open(os.path.join(pkg, name), "w") as f:
                f.write(textwrap.dedent(text))
        self.state = os.path.join(self.tmp, "state")
        self.env = dict(os.environ)
        self.env.update({
            "PYTHONPATH": os.pathsep.join([os.path.join(PYTHON, "mlsdiag", "_sitecustomize"),
                                           PYTHON, os.path.join(self.tmp, "fake")]),
            "MLSDIAG_AUTO": "1",
            "MLSDIAG_STATE_DIR": self.state,
        })

    def python(self, *args, env=None):
        p = subprocess.run([sys.executable, *args], env=env or self.env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_the_server_counts_tokens_its_handler_takes_also_under_python_m(self):
        for how in (["-m", "mlx_lm.server"], ["-c", "import mlx_lm.server as s; s.main()"]):
            p = self.python(*how)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            self.assertIn("mlsdiag: token record", p.stderr)
            self.assertEqual(r["all_read"]["tokens"], 9, (how, r))
            self.assertFalse(r["all_read"]["active"])
            self.assertEqual(r["partly_read"]["tokens"], 13, "4 more were delivered")
            self.assertEqual(r["partly_read"]["generations"], 2)
            self.assertFalse(r["partly_read"]["active"], "a dropped response ends it")
            self.assertTrue(r["stuck"]["active"], "queued, unanswered: in flight")
            self.assertEqual(r["stuck"]["request_tokens"], 0)

    def test_library_generators_count_once_and_batches_per_sequence(self):
        code = textwrap.dedent("""
            import mlx_lm.generate as g, mlsdiag._auto as a
            list(g.stream_generate(None, None, "p", max_tokens=5))
            list(g.generate_step("p", None, max_tokens=3))
            b = g.BatchGenerator()
            b.insert([[1], [2]], max_tokens=[2, 4])
            for _ in range(2):
                b.next()
            b.remove([1])
            print(a.diag().progress_path)
        """)
        p = self.python("-c", code)
        r = record(p.stdout.strip())
        self.assertEqual(r["tokens"], 5 + 3 + 2 + 2, r)
        self.assertEqual(r["generations"], 4, r)
        self.assertEqual(r["active_since"], 0, r)
        self.assertEqual((r["prompt_done"], r["prompt_total"]), (0, 0))

    def test_without_the_switch_nothing_is_hooked(self):
        env = dict(self.env, MLSDIAG_AUTO="0")
        p = self.python("-c", "import mlx_lm.generate as g; print(hasattr(g.stream_generate, '__mlsdiag_wrapped__'))", env=env)
        self.assertEqual(p.stdout.strip(), "False")
        self.assertNotIn("mlsdiag", p.stderr)

    def test_an_unusable_state_dir_never_stops_the_host(self):
        os.makedirs(self.state)
        os.chmod(self.state, 0o777)
        p = self.python("-m", "mlx_lm.server")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertIn("is not usable", p.stderr)
        self.assertEqual(r["all_read"]["tokens"], 9)

    def test_the_shadowed_sitecustomize_still_runs(self):
        other = os.path.join(self.tmp, "other")
        os.mkdir(other)
        with open(os.path.join(other, "sitecustomize.py"), "w") as f:
            f.write("import os\nos.environ['SHADOWED_RAN'] = '1'\n")
        env = dict(self.env, PYTHONPATH=self.env["PYTHONPATH"] + os.pathsep + other)
        p = self.python("-c", "import os; print(os.environ.get('SHADOWED_RAN'))", env=env)
        self.assertEqual(p.stdout.strip(), "1")


if __name__ == "__main__":
    unittest.main()
