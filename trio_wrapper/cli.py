"""Command line: ``trio-wrapper serve [--config F] [--host H] [--port P] [--logs-dir D]
[--log-format text|json] [--log-level L]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from trio_wrapper import __version__
from trio_wrapper.config import ConfigError, load_config
from trio_wrapper.core.logformat import LOG_FORMATS, LOG_LEVELS, configure, log_format
from trio_wrapper.runtime.heap import use_system_allocator

DEFAULT_CONFIG = Path("conf/trio_wrapper.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trio-wrapper", description=__doc__)
    parser.add_argument("--version", action="version", version=f"trio-wrapper {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument(
        "--config",
        help=f"TOML config file (default: $TRIO_WRAPPER_CONFIG, else {DEFAULT_CONFIG} if present)",
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
    return parser


def _config_path(arg: str | None) -> str | None:
    if arg:
        return arg
    env = os.environ.get("TRIO_WRAPPER_CONFIG")
    if env:
        return env
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        config = load_config(_config_path(args.config), overrides=overrides)
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
