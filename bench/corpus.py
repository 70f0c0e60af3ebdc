"""The benchmark corpus: what agents really write, generated deterministically.

Densities (a record per line, counted by the ``text`` extractor itself; ``--check``):

- ``sparse``: about 5 % of lines yield a record, the rest ordinary command output;
- ``mixed``: about 25 %;
- ``dense``: at least 50 %, every category (session, prompt, response, state, tool_call,
  metric, error, file_op, code_block) at least one line in 20, lines of 20-120 bytes,
  code fences with bodies, ``exec`` lines glued to the previous command line (codex's
  parallel commands);
- ``real-*``: the repository's own transcripts (tests/fixtures/transcripts) repeated:
  ``real-text`` (codex's plain output), ``real-codex-json``, ``real-claude-json``.

Two ways of writing each file: ``cat FILE`` (64 KiB writes) and ``python3 bench/corpus.py
write FILE``: one ``write(2)`` per line, as an agent printing line by line does.

    .venv/bin/python bench/corpus.py --check [--lines 200000]    # densities per file
    python3 bench/corpus.py write FILE                           # the line-per-write child
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "tests" / "fixtures" / "transcripts"
CACHE_DIR = Path(tempfile.gettempdir()) / "trio_wrapper_bench"
CORPUS_VERSION = 1
TEXT_KINDS = ("sparse", "mixed", "dense", "real-text")
JSON_KINDS = {"real-codex-json": "codex-json", "real-claude-json": "claude-stream-json"}
KINDS = (*TEXT_KINDS, *JSON_KINDS)
# The share of ordinary lines mixed between dense episodes, per density (tuned with --check).
_FILLER_PER_EPISODE = {"sparse": 200, "mixed": 26, "dense": 0}

_WORDS = [
    "agent",
    "config",
    "parser",
    "reader",
    "stream",
    "buffer",
    "status",
    "worker",
    "client",
    "server",
    "request",
    "response",
    "handler",
    "session",
    "token",
    "module",
    "router",
    "daemon",
    "process",
    "output",
    "events",
    "cache",
    "index",
    "schema",
    "record",
    "table",
    "query",
    "filter",
]
_COMMANDS = (
    "pytest -q",
    "git status --short",
    "git diff --stat",
    "rg -n TODO src",
    "cat setup.cfg",
    "sed -n 1,80p app.py",
    "make lint",
    "cargo build --release",
    "npm test -- --watch=false",
    "ls -la src/components",
)
_LANGS = ("python", "ts", "rust", "bash", "go", "")
_FILLER_TEMPLATES = (
    "drwxr-xr-x  5 user staff   160 Mar 12 16:59 {w}",
    "    return self._{w}.get(key, default)",
    "Running {n} tests across 7 modules with coverage enabled",
    "",
    "\x1b[32m  PASS\x1b[0m tests/test_{w}.py::test_roundtrip (0.02s)",
    "The function handles the empty input case by returning early from the {w}.",
    "2026-02-10 05:44:31,123 INFO {w} started pid={n}",
    "  - refactor the loop so each {w} is visited once",
    "{w}_{w2} = {w}.{w2}({n})",
    "    at {w}.{w2} (src/{w}/index.js:{n}:17)",
    "Compiling {w} v0.{n}.0 (/workspace/{w})",
    "test {w}::{w2}::roundtrip ... ok",
)


def _filler(rng: random.Random) -> str:
    return rng.choice(_FILLER_TEMPLATES).format(
        w=rng.choice(_WORDS), w2=rng.choice(_WORDS), n=rng.randint(1, 9999)
    )


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _episode(rng: random.Random) -> list[str]:
    """One turn of ``codex exec``'s plain output, about 19 lines and 12 records: every
    category at least once."""
    w = rng.choice
    path = f"src/{w(_WORDS)}/{w(_WORDS)}.{w(('py', 'ts', 'rs', 'go'))}"
    lang = w(_LANGS)
    body = [
        f"{'    ' * (i > 0)}{w(_WORDS)}_{i} = {w(_WORDS)}({rng.randint(0, 99)})"
        for i in range(rng.randint(1, 2))
    ]
    out = [
        "user",
        _sentence(rng, rng.randint(6, 16)),
        "thinking",
        f"**Checking the {w(_WORDS)} {w(_WORDS)}**",
        "codex",
        _sentence(rng, rng.randint(5, 14)),
        f"```{lang}",
        *body,
        "```",
        "exec",
    ]
    cmd = w(_COMMANDS)
    if rng.random() < 0.2:
        # Two commands in parallel: the second ``exec`` glued to the first command line.
        other = w(_COMMANDS)
        out += [
            f"/usr/bin/bash -lc '{other}' in /workspaceexec",
            f"/usr/bin/bash -lc '{cmd}' in /workspace succeeded in {rng.randint(1, 999)}ms:",
            f" succeeded in {rng.randint(1, 9)}.{rng.randint(0, 9)}s:",
        ]
    else:
        code = w((0, 0, 0, 1, 2, 101))
        status = "succeeded" if code == 0 else f"exited {code}"
        out.append(f"/usr/bin/bash -lc '{cmd}' in /workspace {status} in {rng.randint(1, 999)}ms:")
    out += [
        w(
            (
                f"error[E0{rng.randint(100, 999)}]: mismatched types in {w(_WORDS)}",
                f"warning: unused variable: `{w(_WORDS)}`",
            )
        ),
        "tokens used",
        f"{rng.randint(1, 99)},{rng.randint(100, 999)}",
        w((f"Created {path}", f"Deleted old/{w(_WORDS)}.py")),
        f"Modified: src/lib/{w(_WORDS)}.ts (+{rng.randint(1, 40)} -{rng.randint(0, 20)})",
        w((f"model: gpt-5.{rng.randint(1, 4)}", f"session id: {rng.getrandbits(64):016x}")),
        f"ERROR: {w(_WORDS)} disconnected before completion",
    ]
    return out


def text_lines(kind: str, total: int) -> list[str]:
    """``total`` lines of a generated density (deterministic for a given kind and total)."""
    rng = random.Random(f"{kind}-{total}")
    out: list[str] = []
    fillers = _FILLER_PER_EPISODE[kind]
    while len(out) < total:
        out += _episode(rng)
        for _ in range(rng.randint(fillers // 2, fillers + fillers // 2) if fillers else 0):
            out.append(_filler(rng))
    return out[:total]


def real_lines(kind: str, total: int) -> list[bytes]:
    pattern = {
        "real-text": "codex/*.txt",
        "real-codex-json": "codex/*.jsonl",
        "real-claude-json": "claude/*.jsonl",
    }[kind]
    return repeated_transcripts(pattern, total)


def repeated_transcripts(pattern: str, total: int) -> list[bytes]:
    """The non-empty lines of the repository's transcripts matching ``pattern`` (sorted by
    path), repeated until there are ``total``."""
    source: list[bytes] = []
    for path in sorted(TRANSCRIPTS.glob(pattern)):
        source.extend(line for line in path.read_bytes().split(b"\n") if line)
    out: list[bytes] = []
    while len(out) < total:
        out.extend(source)
    return out[:total]


def lines_of(kind: str, total: int) -> list[bytes]:
    if kind.startswith("real-"):
        return real_lines(kind, total)
    return [line.encode() for line in text_lines(kind, total)]


def fmt_of(kind: str) -> str:
    return JSON_KINDS.get(kind, "text")


def corpus_file(kind: str, total: int) -> Path:
    """The cached file of ``total`` lines of ``kind`` (generated once)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"corpus-v{CORPUS_VERSION}-{kind}-{total}.txt"
    if not path.is_file():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(b"\n".join(lines_of(kind, total)) + b"\n")
        os.replace(tmp, path)
    return path


# ---- the line-per-write child -------------------------------------------------------


def write_lines(path: Path, out_fd: int = 1) -> None:
    """One ``write(2)`` per line of ``path`` (a line longer than the pipe goes in several)."""
    with open(path, "rb") as handle:
        for line in handle:
            view = memoryview(line)
            while view:
                view = view[os.write(out_fd, view) :]


def writer_command(path: Path) -> list[str]:
    """The argv of the line-per-write child: the system's python3, no venv, no site."""
    return ["/usr/bin/python3", "-S", str(Path(__file__).resolve()), "write", str(path)]


# ---- --check: the densities, by the extractor itself ---------------------------------


def densities(kind: str, total: int) -> tuple[Counter[str], int]:
    sys.path.insert(0, str(ROOT))
    from trio_wrapper.extract import make_extractor
    from trio_wrapper.extract.found import Found

    lines = lines_of(kind, total)
    ex = make_extractor(fmt_of(kind))
    counts: Counter[str] = Counter()
    for start in range(0, len(lines), 2000):
        counts.update(Found.of(ex.feed(lines[start : start + 2000], start + 1, "stdout")).counts())
    counts.update(Found.of(ex.finish()).counts())
    return counts, len(lines)


def check(total: int, say: Callable[[str], None] = print) -> None:
    for kind in KINDS:
        counts, n = densities(kind, total)
        per = ", ".join(f"{k} {v / n:.1%}" for k, v in sorted(counts.items()))
        say(f"{kind:<18} {n:>9,} lines  records {sum(counts.values()) / n:6.1%}  ({per})")


def iter_kinds(value: str) -> Iterator[str]:
    for kind in value.split(","):
        if kind not in KINDS:
            raise SystemExit(f"unknown corpus kind {kind!r} (known: {', '.join(KINDS)})")
        yield kind


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        try:
            write_lines(Path(sys.argv[2]))
        except BrokenPipeError:
            sys.exit(1)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--check", action="store_true", help="print each file's densities")
    args = parser.parse_args()
    for kind in KINDS:
        print(corpus_file(kind, args.lines))
    if args.check:
        check(args.lines)


if __name__ == "__main__":
    main()
