"""trio-wrapper: run AI coding-agent CLIs under a daemon, and drive them from the shell.

`trio-wrapper serve` runs the daemon; the other commands are its clients, over HTTP.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import trio

from trio_wrapper import __version__
from trio_wrapper.client import commands as client
from trio_wrapper.client import flags as client_flags
from trio_wrapper.config import ConfigError, config_file, load_config
from trio_wrapper.core.logformat import LOG_FORMATS, LOG_LEVELS, configure, log_format
from trio_wrapper.runtime.heap import use_system_allocator

DESCRIPTION = """\
Run AI coding-agent CLIs (Codex, Claude Code, Gemini CLI, Aider, or any command) under a
daemon that keeps their output, extracts what they do and serves it over HTTP.

  trio-wrapper serve                          run the daemon (http://127.0.0.1:8151)
  trio-wrapper run demo -- sh -c 'echo hi'    run a command under it, exit with its code
  trio-wrapper ls                             what runs
  trio-wrapper tail -f demo                   follow one agent live

Run 'trio-wrapper COMMAND --help' for a command's flags.
"""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (and exit code 2), not the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks (examples); flags' help is wrapped at spaces
    only (never inside ``codex-json``)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="trio-wrapper", description=DESCRIPTION, formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"trio-wrapper {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the daemon in the foreground",
        description="Run the daemon in the foreground until SIGTERM or SIGINT "
        "(Ctrl-C), which stop every agent first.",
        formatter_class=Formatter,
    )
    serve.add_argument(
        "--config",
        help="TOML config file "
        "(default: $TRIO_WRAPPER_CONFIG, else conf/trio_wrapper.toml if present)",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8151; 0 = any free port)")
    serve.add_argument("--logs-dir", help="where agent logs go (default ./logs)")
    serve.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        help="the daemon's log level (default: logging.level, info)",
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="the daemon's log on stderr: text with key=value pairs, or one JSON object "
        "a line (default: logging.format, text)",
    )
    client_flags.add_commands(sub, Formatter)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, with ``start``/``run``'s command after ``--`` taken apart first:
    argparse cannot find positionals after ``--`` once flags came between them and the
    name (``start demo --stdin -- cat``)."""
    parser = build_parser()
    args = list(argv)
    if "--" in args:
        split = args.index("--")
        head, tail = args[:split], args[split + 1 :]
        parsed = parser.parse_args(head)
        if parsed.subcommand in client_flags.TAKES_ARGV:
            if parsed.argv:
                parser.error(f"the command goes after '--', not before: {parsed.argv[0]!r}")
            parsed.argv = tail
            return parsed
    return parser.parse_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.subcommand != "serve":
        return client.run(args)
    if argv is None:
        # Run as the program (not called from a test): the daemon runs on the C
        # library's malloc, which gives back what floods leave (runtime.heap).
        use_system_allocator()
    overrides: dict[str, dict[str, Any]] = {"server": {}, "logging": {}}
    if args.host is not None:
        overrides["server"]["host"] = args.host
    if args.port is not None:
        overrides["server"]["port"] = args.port
    if args.logs_dir is not None:
        overrides["server"]["logs_dir"] = args.logs_dir
    if args.log_level is not None:
        overrides["logging"]["level"] = args.log_level
    if args.log_format is not None:
        overrides["logging"]["format"] = args.log_format
    try:
        config = load_config(config_file(args.config), overrides=overrides)
        _ = config.token  # a token file that cannot be read is a config error too
        rules = config.rules()  # so is a bad extraction rule
    except ConfigError as exc:
        print(f"trio-wrapper: config error: {exc}", file=sys.stderr)
        return 2
    # Every line through one formatter; the token never appears in any of them.
    configure(
        config.logging.level,
        log_format(config.logging.format),
        secrets=[config.token],
        stream=sys.stderr,
    )
    problem = logs_dir_problem(Path(config.server.logs_dir))
    if problem:
        print(f"trio-wrapper: cannot start: {problem}", file=sys.stderr)
        return 1
    from trio_wrapper.daemon import ListenError, first_leaf, serve

    try:
        trio.run(serve, config, rules)
    except (ListenError, BaseExceptionGroup) as exc:
        # Only a failure to bind is a start-up failure said in one line (the nurseries
        # wrap it in exception groups); anything else is a bug and keeps its traceback.
        failure = first_leaf(exc, ListenError)
        if failure is None:
            raise
        print(f"trio-wrapper: cannot start: {failure}", file=sys.stderr)
        return 1
    return 0


def logs_dir_problem(logs_dir: Path) -> str | None:
    """Why the daemon could not keep logs in ``logs_dir``, or None: checked before
    anything starts, so the answer is one line instead of a task's traceback."""
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
        probe = logs_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"logs dir {str(logs_dir)!r} is not writable: {(exc.strerror or str(exc)).lower()}"
    return None
