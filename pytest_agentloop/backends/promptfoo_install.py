"""Installing the pinned Promptfoo from the npm registry into a cache outside the work tree.

The cache is ``~/.cache/pytest-agentloop/promptfoo-<version>/`` (``$AGENTLOOP_CACHE``
replaces ``~/.cache/pytest-agentloop``). A file lock makes parallel sessions and
xdist workers install once; the install is tried twice, because Promptfoo's
native module (better-sqlite3) is compiled during ``npm install`` and that
step fails now and then on a busy machine. What failed is said, with the log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from pytest_agentloop.errors import AgentloopError

PROMPTFOO_VERSION = "0.121.9"
MIN_NODE_MAJOR = 20
INSTALL_TIMEOUT = 1800.0
MARKER = "installed.json"
Say = Callable[[str], None]


class PromptfooUnavailable(AgentloopError):
    """Promptfoo cannot be run here: node missing, install failed, or the wrong version."""


def cache_root() -> Path:
    """Where pytest-agentloop keeps installed tools (``$AGENTLOOP_CACHE`` or ``~/.cache/pytest-agentloop``)."""
    override = os.environ.get("AGENTLOOP_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "pytest-agentloop"


def install_dir(version: str = PROMPTFOO_VERSION) -> Path:
    """The folder one Promptfoo version is installed in."""
    return cache_root() / f"promptfoo-{version}"


def executable(version: str = PROMPTFOO_VERSION) -> Path:
    """The ``promptfoo`` command inside the cache."""
    return install_dir(version) / "node_modules" / ".bin" / "promptfoo"


def installed_version(folder: Path) -> str | None:
    """The version in ``node_modules/promptfoo/package.json``, or None when not installed."""
    try:
        data = json.loads((folder / "node_modules" / "promptfoo" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version else None


def node_version() -> str:
    """``node --version``; raises PromptfooUnavailable when node or npm is missing or too old."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = "node" if node is None else "npm"
        raise PromptfooUnavailable(
            f"Promptfoo needs Node.js {MIN_NODE_MAJOR}+ and npm, and {missing} is not on PATH; "
            "install them (Debian: `apt-get install -y nodejs npm`)"
        )
    text = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    match = re.match(r"v?(\d+)", text)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        raise PromptfooUnavailable(f"Promptfoo {PROMPTFOO_VERSION} needs Node.js {MIN_NODE_MAJOR}+, found {text!r}")
    return text


def ensure_promptfoo(say: Say = print, version: str = PROMPTFOO_VERSION) -> Path:
    """The pinned ``promptfoo`` executable, installed first if needed (once, under a file lock)."""
    folder = install_dir(version)
    if _ready(folder, version):
        return executable(version)
    node = node_version()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".promptfoo-{version}.lock")):
        if _ready(folder, version):  # another process installed it while we waited
            return executable(version)
        _install(folder, version, node, say)
    return executable(version)


def _ready(folder: Path, version: str) -> bool:
    """Installed, finished (marker written last) and the pinned version."""
    if not (folder / MARKER).is_file() or not executable(version).exists():
        return False
    found = installed_version(folder)
    if found != version:
        raise PromptfooUnavailable(
            f"{folder} holds Promptfoo {found}, not the pinned {version}; delete the folder to reinstall"
        )
    return True


def _install(folder: Path, version: str, node: str, say: Say) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "agentloop-promptfoo-cache", "private": true}\n')
    failures: list[str] = []
    for attempt in (1, 2):
        say(f"agentloop: installing Promptfoo {version} from the npm registry into {folder} (attempt {attempt} of 2)")
        log = folder / f"install-{attempt}.log"
        problem = _npm_install(folder, version, log)
        if problem is None and installed_version(folder) == version and executable(version).exists():
            (folder / MARKER).write_text(json.dumps({"version": version, "node": node}) + "\n")
            return
        failures.append(f"attempt {attempt}: {problem or 'npm finished but promptfoo is not in node_modules'} ({log})")
        if attempt == 1:
            say(f"agentloop: Promptfoo install failed ({failures[-1]}); retrying once")
    raise PromptfooUnavailable(f"could not install Promptfoo {version}: " + "; ".join(failures))


def _npm_install(folder: Path, version: str, log: Path) -> str | None:
    """Run ``npm install``; None on success, else what failed (the last error lines)."""
    command = ["npm", "install", "--no-audit", "--no-fund", "--no-save", f"promptfoo@{version}"]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"npm install ran over {INSTALL_TIMEOUT:.0f}s"
    log.write_text(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    if done.returncode == 0:
        return None
    return f"npm install exited {done.returncode}: {failure_summary(done.stdout + done.stderr)}"


def failure_summary(output: str, lines: int = 4) -> str:
    """The lines of npm's output that say what failed (node-gyp compile errors first)."""
    found = [line.strip() for line in output.splitlines() if re.search(r"gyp ERR!|npm error|npm ERR!|error:", line)]
    compile_step = [line for line in found if "gyp" in line or "better-sqlite3" in line]
    chosen = (compile_step or found)[-lines:]
    return " | ".join(chosen) if chosen else (output.strip().splitlines() or ["no output"])[-1]
