"""``python -m mlsdiag``: runs the mlsdiag binary the wheel installed next to this Python."""

import os
import sys
import sysconfig


def find_binary():
    """The installed ``mlsdiag`` executable: the scripts directory of this environment, then
    the user scheme's (``pip install --user``), then PATH; ``None`` when there is none."""
    name = "mlsdiag"
    candidates = [sysconfig.get_path("scripts")]
    # The user scheme of `pip install --user` (osx_framework_user for python.org and Homebrew
    # builds on macOS).
    if hasattr(sysconfig, "get_preferred_scheme"):
        user = sysconfig.get_preferred_scheme("user")
    else:
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
    return None


def main():
    path = find_binary()
    if path is None:
        sys.exit("mlsdiag: the mlsdiag binary is not installed next to this Python (install the wheel)")
    os.execv(path, [path, *sys.argv[1:]])


if __name__ == "__main__":
    main()
