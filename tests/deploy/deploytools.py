"""deploytools: what the deployment tests (label deploy) share: a virtualenv with their PyPI
packages, the libconfig reading they need, and the metric names a query uses.

The venv lives in $HB_DEPLOY_VENV, default ${XDG_CACHE_HOME:-~/.cache}/hookbridge/deploy-venv;
it is made (python3 -m venv, then pip install of PIP_PACKAGES from PyPI) when it is missing or
holds other versions, and each test script runs itself again under its interpreter.
"""

import fcntl
import os
import pathlib
import re
import subprocess
import sys

# kubernetes-validate's schemas for 1.37 (the newest Kubernetes release it knows); PyYAML comes
# with it.
PIP_PACKAGES = ["kubernetes-validate==1.37.0"]

_MARK = "HB_DEPLOY_VENV_ACTIVE"


def venv_dir():
    explicit = os.environ.get("HB_DEPLOY_VENV")
    if explicit:
        return pathlib.Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "hookbridge" / "deploy-venv"


def _venv_ok(python):
    if not python.exists():
        return False
    stamp = python.parent.parent / "hb-packages.txt"
    return stamp.exists() and stamp.read_text() == "\n".join(PIP_PACKAGES) + "\n"


def ensure_venv():
    """Runs the calling script again under the venv's python (made first if needed); returns
    only when already running there."""
    if os.environ.get(_MARK) == "1":
        return
    venv = venv_dir()
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Tests run in parallel (ctest -j) make the venv once: the others wait on the lock.
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _venv_ok(python):
            print(f"deploytools: making {venv} with {' '.join(PIP_PACKAGES)}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", *PIP_PACKAGES], check=True)
            (venv / "hb-packages.txt").write_text("\n".join(PIP_PACKAGES) + "\n")
    env = dict(os.environ, **{_MARK: "1"})
    os.execve(str(python), [str(python), *sys.argv], env)


def source_dir():
    return pathlib.Path(os.environ.get("HB_SOURCE_DIR") or
                        pathlib.Path(__file__).resolve().parents[2])


# ---- libconfig, as far as these tests need it ---------------------------------------------

_GROUP_OPEN = re.compile(r"^\s*([A-Za-z][-A-Za-z0-9_]*)\s*[=:]\s*\{\s*$")
_SCALAR = re.compile(r'^\s*([A-Za-z][-A-Za-z0-9_]*)\s*[=:]\s*("(?:[^"\\]|\\.)*"|[-0-9]+L?)\s*;')


def conf_scalars(text):
    """{"group.name": value} for the scalar settings of a libconfig text written one setting a
    line (as the shipped files are): strings unquoted, integers as int. Lists are skipped."""
    out, stack = {}, []
    for line in text.splitlines():
        if line.lstrip().startswith(("#", "//")):
            continue
        m = _GROUP_OPEN.match(line)
        if m:
            stack.append(m.group(1))
            continue
        if re.match(r"^\s*\}\s*;?\s*$", line):
            if stack:
                stack.pop()
            continue
        m = _SCALAR.match(line)
        if m:
            name, raw = m.groups()
            value = raw[1:-1] if raw.startswith('"') else int(raw.rstrip("L"))
            out[".".join(stack + [name])] = value
    return out


def conf_includes(text):
    return re.findall(r'^\s*@include\s+"([^"]+)"', text, re.M)


def option_defaults(hb_bin):
    """{option: default text} from `hookbridge --print-config-reference`."""
    ref = subprocess.run([hb_bin, "--print-config-reference"], check=True,
                         capture_output=True, text=True).stdout
    out = {}
    for line in ref.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            out[cells[0].strip("`")] = cells[2].strip("`")
    return out


# ---- PromQL ---------------------------------------------------------------------------------

_METRIC = re.compile(r"\b(hookbridge_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\b(hookbridge_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def query_metrics(expr):
    """Metric names a PromQL expression reads (hookbridge_* only)."""
    return set(_METRIC.findall(expr))


def query_matchers(expr):
    """[(metric, label, op, value)] for every label matcher on a hookbridge_* selector."""
    out = []
    for metric, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            out.append((metric, label, op, value))
    return out


def family_of(name, families):
    """The metric family a sample name belongs to (histogram series end in _bucket etc.)."""
    if name in families:
        return name
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base if base in families else None
