"""The real agent CLIs, each installed into a cache folder of the repository, never globally.

``.cache/agent-clis/<cli>-<version>/`` (ignored by git): npm ``--prefix`` for Claude Code,
Codex and Gemini CLI, a venv of its own for Aider. An install is done once and marked
finished with ``.installed`` (written last, so a broken install is redone). Versions are
pinned below and can be overridden by ``REAL_CLI_<NAME>_VERSION`` (e.g.
``REAL_CLI_CODEX_VERSION=0.172.0``); ``REAL_CLI_CACHE`` moves the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Cli:
    name: str  # the profile's name, and the executable's
    package: str
    version: str
    kind: str  # "npm" or "pip"

    @property
    def pinned(self) -> str:
        return os.environ.get(f"REAL_CLI_{self.name.upper()}_VERSION", self.version)


CLIS: dict[str, Cli] = {
    "claude": Cli("claude", "@anthropic-ai/claude-code", "2.1.197", "npm"),
    "codex": Cli("codex", "@openai/codex", "0.171.0", "npm"),
    "gemini": Cli("gemini", "@google/gemini-cli", "0.61.0", "npm"),
    "aider": Cli("aider", "aider-chat", "0.86.2", "pip"),
}


@dataclass(frozen=True)
class Installed:
    cli: Cli
    version: str  # as asked for (the package's)
    bin_dir: Path  # put first on the daemon's PATH
    version_text: str  # what ``<cli> --version`` says

    @property
    def executable(self) -> Path:
        return self.bin_dir / self.cli.name


class InstallError(Exception):
    """The CLI could not be installed or run here (the reason is the message)."""


def cache_root() -> Path:
    return Path(os.environ.get("REAL_CLI_CACHE") or REPO / ".cache" / "agent-clis")


def install(cli: Cli) -> Installed:
    """The CLI in its cache folder, installed first if need be; ``InstallError`` says why not."""
    version = cli.pinned
    home = cache_root() / f"{cli.name}-{version}"
    bin_dir = home / "node_modules" / ".bin" if cli.kind == "npm" else home / "bin"
    if not (home / ".installed").exists():
        _install(cli, version, home)
    executable = bin_dir / cli.name
    if not executable.exists():
        raise InstallError(f"{cli.name}: no {executable} after installing")
    try:
        done = subprocess.run(
            [str(executable), "--version"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{cli.name} --version: {exc}") from None
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    if done.returncode != 0 or not text:
        raise InstallError(f"{cli.name} --version exited {done.returncode}: {done.stderr[-500:]}")
    return Installed(cli, version, bin_dir, text[-1])


def _install(cli: Cli, version: str, home: Path) -> None:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    spec = f"{cli.package}@{version}" if cli.kind == "npm" else f"{cli.package}=={version}"
    if cli.kind == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError(f"{cli.name}: npm is not installed")
        # Install scripts run (Claude Code's fetches its native binary from the registry).
        steps = [[npm, "install", "--prefix", str(home), "--no-audit", "--no-fund"]]
        steps[0] += ["--loglevel=error", spec]
    else:
        python = home / "bin" / "python"
        steps = [
            [sys.executable, "-m", "venv", str(home)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
        ]
    for step in steps:
        try:
            done = subprocess.run(
                step,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InstallError(f"{cli.name}: {' '.join(step[:3])}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise InstallError(f"{cli.name}: {' '.join(step[:3])} exited {done.returncode}: {tail}")
    (home / ".installed").write_text(f"{spec}\n")
