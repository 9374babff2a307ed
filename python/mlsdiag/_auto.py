"""The token record wired into a stock mlx-lm, with no edit to the server: ``mlsdiag run --
mlx_lm.server ARGS`` (or ``MLSDIAG_AUTO=1`` with ``mlsdiag/_sitecustomize`` first on
``PYTHONPATH``) makes Python run :func:`install` at start-up, which hooks the imports of
``mlx_lm.generate`` and ``mlx_lm.server`` (also run as ``python -m``) and wraps, once each is
loaded:

* in ``mlx_lm.server``: ``ResponseGenerator.generate``, the one door between an HTTP handler
  and the generation thread (``_generate`` before mlx-lm 0.32, ``_run_generate`` after). A
  token counts when the handler takes it from the response iterator to write it to its client
  (a non-streamed response's ``usage.completion_tokens``, a stream's chunks), and the record
  marks it handed over until the handler asks for the next one. Tokens the generation thread
  makes and nobody takes (mlx-lm #1493's livelock, a dead thread) are not progress. The
  request is in flight from the moment it is queued; prefill chunks come from the progress
  callback the handler passes;
* in ``mlx_lm.generate`` (programs built on the library rather than its server):
  ``stream_generate`` and ``generate_step`` (the tokens their caller takes; the inner call of
  one through the other counts once) and ``BatchGenerator`` (each sequence from
  ``insert_segments`` to its finish or ``remove``, a token per generation response). In a
  process running ``mlx_lm.server`` these only pass through: the server's tokens count where
  they are delivered.

Configuration, from the environment: ``MLSDIAG_STATE_DIR`` (default: the per-user directory
``/tmp/mlsdiag-UID``, the one ``mlsdiag check`` searches without a registry),
``MLSDIAG_WATCHDOG=SECONDS`` and ``MLSDIAG_WATCHDOG_EXIT=1`` (see :func:`mlsdiag.enable`),
``MLSDIAG_STACKS=0`` (no SIGUSR1 handler). Nothing here raises into the host: a hook that
cannot be applied is a warning on stderr and the module stays as it was.
"""

import ast
import functools
import importlib.abc
import importlib.util
import os
import sys
import threading

import mlsdiag

_HOOKED = ("mlx_lm.generate", "mlx_lm.server")
_tls = threading.local()
_state = {"pid": None, "diag": None, "server": False, "installed": False}
_state_lock = threading.Lock()


def enabled_by_env(environ=None):
    """Whether the environment asks for the hooks (``MLSDIAG_AUTO`` set to 1, true, yes, on)."""
    v = (environ or os.environ).get("MLSDIAG_AUTO", "")
    return v.strip().lower() in ("1", "true", "yes", "on")


def install():
    """Hooks the imports of mlx-lm's generation modules (once per process)."""
    if _state["installed"]:
        return
    _state["installed"] = True
    for name in _HOOKED:
        mod = sys.modules.get(name)
        if mod is not None:
            _apply(name, vars(mod))
    sys.meta_path.insert(0, _Finder())


def diag():
    """This process's record, made on first use (a forked child makes its own)."""
    pid = os.getpid()
    d = _state["diag"]
    if d is not None and _state["pid"] == pid:
        return d
    with _state_lock:
        if _state["diag"] is None or _state["pid"] != pid:
            env = os.environ
            watchdog = None
            try:
                watchdog = float(env.get("MLSDIAG_WATCHDOG", "") or 0) or None
            except ValueError:
                mlsdiag._warn(f"MLSDIAG_WATCHDOG={env['MLSDIAG_WATCHDOG']!r} is not seconds")
            d = mlsdiag.enable(
                state_dir=env.get("MLSDIAG_STATE_DIR") or None,
                stacks=env.get("MLSDIAG_STACKS", "1") != "0",
                watchdog=watchdog,
                watchdog_exit=env.get("MLSDIAG_WATCHDOG_EXIT", "") in ("1", "true", "yes"),
            )
            _state["diag"], _state["pid"] = d, pid
            where = d.progress_path or "none"
            wd = f", watchdog {watchdog:g} s" if d._watchdog is not None else ""
            sys.stderr.write(f"mlsdiag: token record {where} (pid {pid}{wd})\n")
        return _state["diag"]


def _safe(fn, *args):
    """Runs a record update; a failure is a warning, never the host's exception."""
    try:
        return fn(*args)
    except Exception as e:
        if not getattr(_tls, "warned", False):
            _tls.warned = True
            mlsdiag._warn(f"record update failed: {e!r}")
        return None


# -- the import hook -------------------------------------------------------------------------


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the hooked modules with the other finders and wraps their loader."""

    def find_spec(self, name, path=None, target=None):
        if name not in _HOOKED or getattr(_tls, "finding", False):
            return None
        _tls.finding = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
            else:
                return None
        except Exception:
            return None
        finally:
            _tls.finding = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, name)
        return spec


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the hook: after ``exec_module`` for an import, and, for
    ``python -m`` (runpy asks for the code and runs it as ``__main__``), just before the
    module's ``if __name__ == "__main__":`` block."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def __getattr__(self, attr):
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _apply(self._name, vars(module))

    def get_code(self, fullname):
        code = self._loader.get_code(fullname)
        try:
            return _with_main_hook(self._loader, fullname) or code
        except Exception as e:
            mlsdiag._warn(f"{fullname} run as __main__ is not hooked: {e!r}")
            return code


def _with_main_hook(loader, name):
    """The module's code with ``_apply(name, globals())`` inserted before its last top-level
    ``if __name__ == "__main__":`` (the original lines keep their numbers); ``None`` when it
    has none."""
    source = loader.get_source(name)
    filename = loader.get_filename(name)
    if source is None:
        return None
    tree = ast.parse(source, filename)
    at = None
    for i, node in enumerate(tree.body):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        ):
            at = i
    if at is None:
        return None
    hook = ast.parse(f"__import__('mlsdiag._auto')._auto._apply({name!r}, globals())").body[0]
    for n in ast.walk(hook):
        n.lineno = n.end_lineno = tree.body[at].lineno
        n.col_offset = n.end_col_offset = 0
    tree.body.insert(at, hook)
    return compile(tree, filename, "exec", dont_inherit=True)


def _apply(name, ns):
    """Wraps the entry points found in the namespace ``ns`` of module ``name``."""
    if ns.get("__mlsdiag_hooked__"):
        return
    ns["__mlsdiag_hooked__"] = True
    try:
        if name == "mlx_lm.server":
            _hook_server(ns)
        elif name == "mlx_lm.generate":
            _hook_generate(ns)
    except Exception as e:
        mlsdiag._warn(f"{name} is not hooked: {e!r}")


# -- mlx_lm.server: tokens delivered to the HTTP handler ---------------------------------------


def _hook_server(ns):
    rg = ns.get("ResponseGenerator")
    handler = ns.get("APIHandler")
    if rg is None or not callable(getattr(rg, "generate", None)):
        mlsdiag._warn("mlx_lm.server has no ResponseGenerator.generate: its tokens are not counted")
        return
    _state["server"] = True
    rg.generate = _server_generate(rg.generate)
    if handler is not None and callable(getattr(handler, "handle_completion", None)):
        handler.handle_completion = _handle_completion(handler.handle_completion)
    diag()  # the record exists from start-up: an idle server is findable too


def _handle_completion(orig):
    @functools.wraps(orig)
    def handle_completion(self, *args, **kwargs):
        _tls.request = getattr(self, "request_id", "") or ""
        try:
            return orig(self, *args, **kwargs)
        finally:
            _tls.request = ""

    return handle_completion


def _server_generate(orig):
    @functools.wraps(orig)
    def generate(self, request, *args, **kwargs):
        d = diag()
        g = _safe(d.begin, getattr(_tls, "request", ""))
        if g is None:
            return orig(self, request, *args, **kwargs)
        cb = kwargs.get("progress_callback")
        if cb is None and len(args) >= 2:
            cb = args[1]

        def progress(done, total):
            _safe(d.prompt_progress, done, total, g)
            if cb is not None:
                cb(done, total)

        if len(args) >= 2:
            args = (args[0], progress) + tuple(args[2:])
        else:
            kwargs["progress_callback"] = progress
        try:
            out = orig(self, request, *args, **kwargs)
        except BaseException:
            _safe(d.end, g)
            raise
        if isinstance(out, tuple) and len(out) == 2 and hasattr(out[1], "__next__"):
            return out[0], _Delivery(d, out[1], g)
        if hasattr(out, "__next__"):
            return _Delivery(d, out, g)
        _safe(d.end, g)
        return out

    return generate


class _Delivery:
    """The response iterator the handler reads: a token counts when the handler takes it,
    and is marked handed over until the handler asks for the next. The generation ends with
    the iterator: exhausted, failed, closed or dropped."""

    __slots__ = ("_d", "_it", "_g", "__weakref__")

    def __init__(self, d, it, g):
        self._d, self._it, self._g = d, it, g

    def __iter__(self):
        return self

    def __next__(self):
        if self._g is None:
            return next(self._it)
        _safe(self._d.resumed, self._g)
        try:
            item = next(self._it)
        except BaseException:
            self._end()
            raise
        _safe(self._d.token, self._g, True)
        return item

    def _end(self):
        g, self._g = self._g, None
        if g is not None:
            _safe(self._d.end, g)

    def close(self):
        self._end()
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    def __del__(self):
        self._end()


# -- mlx_lm.generate: the library's entry points ---------------------------------------------


def _passing_through():
    return _state["server"] or getattr(_tls, "depth", 0) > 0


def _hook_generate(ns):
    for fname in ("stream_generate", "generate_step"):
        f = ns.get(fname)
        if callable(f):
            ns[fname] = _library_generator(f, fname)
    bg = ns.get("BatchGenerator")
    if isinstance(bg, type):
        _hook_batch_generator(bg)


def _library_generator(orig, fname):
    @functools.wraps(orig)
    def wrapper(*args, **kwargs):
        if _passing_through():
            return orig(*args, **kwargs)
        d = diag()
        g = _safe(d.begin, "")
        if g is None:
            return orig(*args, **kwargs)
        user_cb = kwargs.get("prompt_progress_callback")

        def on_prompt(done, total):
            _safe(d.prompt_progress, done, total, g)
            if user_cb is not None:
                user_cb(done, total)

        if not kwargs.get("draft_model"):
            kwargs["prompt_progress_callback"] = on_prompt
        return _library_tokens(d, g, orig, args, kwargs)

    wrapper.__mlsdiag_wrapped__ = orig
    return wrapper


def _library_tokens(d, g, orig, args, kwargs):
    """The tokens of one library generation, each counted when its caller takes it; a nested
    entry point (stream_generate's generate_step) passes through on this thread meanwhile."""
    try:
        _tls.depth = getattr(_tls, "depth", 0) + 1
        try:
            it = orig(*args, **kwargs)
        finally:
            _tls.depth -= 1
        while True:
            _tls.depth += 1
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                _tls.depth -= 1
            _safe(d.token, g, True)
            yield item
            _safe(d.resumed, g)
    finally:
        _safe(d.end, g)


def _hook_batch_generator(cls):
    insert = getattr(cls, "insert_segments", None) or getattr(cls, "insert", None)
    step = getattr(cls, "_next", None) or getattr(cls, "next", None)
    if insert is None or step is None:
        mlsdiag._warn("mlx_lm.generate.BatchGenerator is not hooked (unknown shape)")
        return

    def live(self):
        m = self.__dict__.get("_mlsdiag_live")
        if m is None:
            m = self.__dict__["_mlsdiag_live"] = {}
        return m

    @functools.wraps(insert)
    def insert_wrapper(self, *args, **kwargs):
        uids = insert(self, *args, **kwargs)
        if not _passing_through():
            d = diag()
            for uid in uids or ():
                g = _safe(d.begin, f"uid {uid}")
                if g is not None:
                    live(self)[uid] = g
        return uids

    @functools.wraps(step)
    def step_wrapper(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        m = self.__dict__.get("_mlsdiag_live")
        if m and not _passing_through():
            _safe(_batch_responses, diag(), m, out)
        return out

    def ending(orig):
        @functools.wraps(orig)
        def wrapper(self, uids=None, *args, **kwargs):
            m = self.__dict__.get("_mlsdiag_live") or {}
            for uid in list(m) if uids is None else uids:
                g = m.pop(uid, None)
                if g is not None:
                    _safe(diag().end, g)
            return orig(self, *args, **kwargs) if uids is None else orig(self, uids, *args, **kwargs)

        return wrapper

    setattr(cls, insert.__name__, insert_wrapper)
    setattr(cls, step.__name__, step_wrapper)
    if callable(getattr(cls, "remove", None)):
        cls.remove = ending(cls.remove)
    if callable(getattr(cls, "close", None)):
        close = cls.close

        @functools.wraps(close)
        def close_wrapper(self, *args, **kwargs):
            m = self.__dict__.get("_mlsdiag_live") or {}
            while m:
                _safe(diag().end, m.popitem()[1])
            return close(self, *args, **kwargs)

        cls.close = close_wrapper


def _batch_responses(d, live, out):
    """One step's responses: (prompt responses, generation responses), or generation only."""
    if isinstance(out, tuple) and len(out) == 2:
        prompt, gen = out
    else:
        prompt, gen = (), out
    for r in prompt or ():
        g = live.get(getattr(r, "uid", None))
        p = getattr(r, "progress", None)
        if g is not None and isinstance(p, tuple) and len(p) == 2:
            d.prompt_progress(p[0], p[1], g)
    for r in gen or ():
        uid = getattr(r, "uid", None)
        g = live.get(uid)
        if g is None:
            continue
        d.token(g)
        if getattr(r, "finish_reason", None) is not None:
            live.pop(uid, None)
            d.end(g)
