"""mlsdiag's start-up hook: with ``MLSDIAG_AUTO=1`` and this directory first on ``PYTHONPATH``
(``mlsdiag run`` sets both), Python imports this file at start-up and mlsdiag wires its token
record into mlx-lm as it is imported (``mlsdiag._auto``). Without the switch it does nothing.
Either way it then runs the ``sitecustomize`` this one shadows, if there is one, and it never
raises: a failure is a warning on stderr.
"""


def _mlsdiag_start():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        if os.environ.get("MLSDIAG_AUTO", "").strip().lower() in ("1", "true", "yes", "on"):
            import mlsdiag._auto

            mlsdiag._auto.install()
    except Exception as e:
        try:
            sys.stderr.write(f"mlsdiag: warning: start-up hook failed: {e!r}\n")
        except Exception:
            pass
    # The sitecustomize this one shadows (a distribution's, a virtualenv's).
    try:
        import importlib.machinery
        import importlib.util

        rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
        if spec is not None and spec.loader is not None:
            mod = importlib.util.module_from_spec(spec)
            sys.modules["sitecustomize"] = mod
            spec.loader.exec_module(mod)
    except Exception as e:
        try:
            sys.stderr.write(f"mlsdiag: warning: the shadowed sitecustomize failed: {e!r}\n")
        except Exception:
            pass


_mlsdiag_start()
del _mlsdiag_start
