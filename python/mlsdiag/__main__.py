"""``python -m mlsdiag``: runs the mlsdiag binary the wheel installed next to this Python."""

import os
import sys
import sysconfig


def find_binary():
    """The installed ``mlsdiag`` executable: the scripts directory of this environment, then
    the user scheme's (``pip install --user``), then PATH."""
    name = "mlsdiag"
    candidates = [sysconfig.get_path("scripts")]
    user = f"{os.name}_user"
    if user in sysconfig.get_scheme_names():
        candidates.append(sysconfig.get_path("scripts", scheme=user))
    for d in candidates:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    for d in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(d, name)
        if d and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("the mlsdiag binary is not installed next to this Python")


def main():
    path = find_binary()
    os.execv(path, [path, *sys.argv[1:]])


if __name__ == "__main__":
    main()
