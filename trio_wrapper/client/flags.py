"""The client's subcommands and their flags, beside ``serve`` in one ``trio-wrapper``
parser; each subcommand's handler is in ``client.commands``. Help texts are plain text."""

from __future__ import annotations

import argparse
from typing import Any

from trio_wrapper.client import commands as c
from trio_wrapper.core.models import FORMATS
from trio_wrapper.core.status import Status

STATUSES = tuple(status.value for status in Status)
GROUP_BY = ("day", "model", "name", "profile")
TAKES_ARGV = frozenset({"start", "run"})  # commands with a command line after "--"


CLIENT_EPILOG = """\
The daemon is found at --url, else $TRIO_WRAPPER_URL, else from the config file
(server.host, server.port, server.root_path). The token, when the daemon needs one,
comes from --token-file, else $TRIO_WRAPPER_AUTH_TOKEN, else the config's auth.token
or auth.token_file.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        help="the daemon's base URL, with its path prefix if any "
        "(default: $TRIO_WRAPPER_URL, else from the config)",
    )
    group.add_argument("--token-file", metavar="FILE", help="read the bearer token from FILE")
    group.add_argument(
        "--config",
        metavar="FILE",
        help="the config file that says where the daemon listens "
        "(default: $TRIO_WRAPPER_CONFIG, else conf/trio_wrapper.toml if present)",
    )


def _start_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the agent's name (letters, digits, '.', '_', '-')")
    parser.add_argument(
        "argv",
        nargs="*",
        metavar="CMD",
        help="after '--': the command line, run without a shell",
    )
    parser.add_argument("--profile", help="a profile of the daemon's config (codex, claude…)")
    parser.add_argument("--prompt", help="the prompt that fills the profile's {prompt}")
    parser.add_argument(
        "--cwd",
        help="working directory (default: this one when the daemon is on this machine)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="an extra variable"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        metavar="FORMAT",
        help=f"how its output is read for records: {', '.join(FORMATS)} (default: auto)",
    )
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="stop it after this long")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="if an ended agent has the name, unlist it first (its files stay on disk)",
    )


def _force(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--force", action="store_true", help=f"{what}: SIGKILL right after SIGTERM, no grace"
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON answer")


def add_commands(
    sub: argparse._SubParsersAction[Any],
    formatter: type[argparse.HelpFormatter],
) -> None:
    """The client's subcommands, beside ``serve``."""

    def command(name: str, handler: c.Handler, summary: str, description: str = "") -> Any:
        parser = sub.add_parser(
            name,
            help=summary,
            description=description or summary[0].upper() + summary[1:] + ".",
            epilog=CLIENT_EPILOG,
            formatter_class=formatter,
        )
        parser.set_defaults(handler=handler)
        return parser

    p = command("ls", c.cmd_ls, "list the agents: status, uptime, lines, records, errors")
    p.add_argument(
        "--status",
        choices=STATUSES,
        metavar="STATUS",
        help=f"only agents with this status: {', '.join(STATUSES)}",
    )
    _json(p)
    _common(p)

    p = command(
        "start",
        c.cmd_start,
        "start an agent",
        "Start an agent from a command line or from a profile of the daemon's config:\n"
        "  trio-wrapper start demo -- sh -c 'echo hello'\n"
        "  trio-wrapper start fib --profile codex --prompt 'write fibonacci in python'",
    )
    _start_flags(p)
    p.add_argument("--stdin", action="store_true", help="keep its stdin open for 'input'")
    p.add_argument("--pty", action="store_true", help="give it a terminal")
    _json(p)
    _common(p)

    p = command("stop", c.cmd_stop, "stop an agent (it stays listed; 'restart' runs it again)")
    p.add_argument("name")
    _force(p, "stop at once")
    _common(p)

    p = command("restart", c.cmd_restart, "start a new run of an agent's command, same name")
    p.add_argument("name")
    _force(p, "stop the current run at once")
    _common(p)

    p = command("rm", c.cmd_rm, "stop an agent and unlist it (its files stay on disk)")
    p.add_argument("name")
    _force(p, "stop at once")
    _common(p)

    p = command("show", c.cmd_show, "an agent's status, figures and latest records")
    p.add_argument("name")
    _json(p)
    _common(p)

    p = command("logs", c.cmd_logs, "print an agent's raw log (stdout, or --stderr)")
    p.add_argument("name")
    p.add_argument("--stderr", action="store_true", help="the stderr log instead of stdout")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    _common(p)

    p = command(
        "tail",
        c.cmd_tail,
        "an agent's last lines; with -f, its live output and records until it ends",
        "Print an agent's last lines (stdout, then stderr).\n"
        "With -f, replay its last N events, then follow it live until it ends: stdout lines\n"
        "as they are, stderr lines marked 'stderr| ', records '» ', status changes '-- '\n"
        "(coloured on a terminal; NO_COLOR turns colour off).",
    )
    p.add_argument("name")
    p.add_argument("-f", "--follow", action="store_true", help="follow it live until it ends")
    p.add_argument(
        "-n", "--lines", type=int, default=10, metavar="N", help="lines (events with -f), 10"
    )
    _common(p)

    p = command(
        "input",
        c.cmd_input,
        "write a line to an agent's stdin (started with --stdin), or close it",
        "Write TEXT and a newline to the agent's stdin; --eof closes it afterwards\n"
        "(Ctrl-D for a --pty agent). The agent must have been started with --stdin.",
    )
    p.add_argument("name")
    p.add_argument("text", nargs="?", metavar="TEXT")
    p.add_argument("--eof", action="store_true", help="close its stdin (after TEXT, if given)")
    p.add_argument("--no-newline", action="store_true", help="do not add a newline to TEXT")
    _common(p)

    p = command(
        "run",
        c.cmd_run,
        "start an agent, show its output until it ends, exit with its exit code",
        "Start an agent and stay with it: its stdout goes to stdout, its stderr to stderr,\n"
        "and trio-wrapper exits with the agent's exit code (128+N when signal N killed it).\n"
        "Ctrl-C stops the agent. Its logs and records stay in the daemon.\n"
        "  trio-wrapper run build -- make test",
    )
    _start_flags(p)
    p.add_argument(
        "--stdin", action="store_true", help="pass this terminal's stdin on to the agent"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also show records and status on stderr"
    )
    _common(p)

    p = command("runs", c.cmd_runs, "every run of a name, newest first, with tokens and cost")
    p.add_argument("name")
    _json(p)
    _common(p)

    p = command("usage", c.cmd_usage, "tokens and cost of the runs, totalled by day, model or name")
    p.add_argument(
        "--by",
        choices=GROUP_BY,
        default="day",
        metavar="KEY",
        help=f"how to total: {', '.join(GROUP_BY)} (default: day)",
    )
    p.add_argument(
        "--since", metavar="TIME", help="runs started at or after (2026-12-01, RFC 3339)"
    )
    p.add_argument("--until", metavar="TIME", help="runs started before")
    _json(p)
    _common(p)

    p = command("metrics", c.cmd_metrics, "the daemon's figures: agents, events, records, clients")
    p.add_argument("--prometheus", action="store_true", help="print /metrics as it is")
    _json(p)
    _common(p)
