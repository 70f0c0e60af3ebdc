"""The client's subcommands: what each does and prints (their flags: ``client.flags``).

Each command talks to the daemon through ``Http``; a failure is a ``ClientError`` whose one
line ``run`` prints on stderr, with exit code 1 (2 for a bad flag, from argparse). ``run``
itself exits with the agent's own exit code.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import ipaddress
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from trio_wrapper.client import render
from trio_wrapper.client.http import ApiError, ClientError, DaemonUnreachable, Http, agent_path
from trio_wrapper.client.sse import SseEvent
from trio_wrapper.config import TOKEN_ENV, ConfigError, config_file, load_config
from trio_wrapper.core.status import Status

URL_ENV = "TRIO_WRAPPER_URL"
TERMINAL = frozenset(status.value for status in Status if status.is_terminal)
# A stream cut before its agent ended is resumed (Last-Event-ID) this many times.
RESUMES = 5
RESUME_PAUSE = 1.0
RECENT_RECORDS = 3  # of each kind, in `show`


@dataclass
class Context:
    http: Http
    out: TextIO
    err: TextIO
    style: render.Style
    local: bool = False  # the daemon is on this machine (a loopback URL)

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A line for the user on stderr (not part of the command's output)."""
        print(f"trio-wrapper: {text}", file=self.err, flush=True)


Handler = Callable[[Context, argparse.Namespace], int]


# ---- where the daemon is ------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_from_config(config_arg: str | None) -> tuple[str, str]:
    """The daemon's URL and token as its configuration says (file, environment): ``server``
    host, port and root path (a wildcard bind is reached on loopback), ``auth`` token."""
    config = load_config(config_file(config_arg))
    host = config.server.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{config.server.port}{config.server.root_path}"
    try:
        token = config.token
    except ConfigError:
        token = ""  # a token file this user cannot read: try without
    return url, token


def connect(args: argparse.Namespace) -> Http:
    """``--url`` > ``$TRIO_WRAPPER_URL`` > the config; ``--token-file`` >
    ``$TRIO_WRAPPER_AUTH_TOKEN`` > the config's token."""
    url = args.url or os.environ.get(URL_ENV, "")
    token = ""
    if args.token_file:
        try:
            lines = Path(args.token_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ClientError(f"cannot read --token-file {args.token_file!r}: {reason}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ClientError(f"--token-file {args.token_file!r}: its first line is empty")
    token = token or os.environ.get(TOKEN_ENV, "").strip()
    if not url:
        try:
            url, config_token = url_from_config(args.config)
        except ConfigError as exc:
            raise ClientError(f"config error: {exc} (or give --url)") from None
        token = token or config_token
    return Http(url, token or None)


# ---- small helpers ------------------------------------------------------------------


def _print_json(ctx: Context, data: Any) -> None:
    ctx.print(json.dumps(data, indent=2, ensure_ascii=False))


def _env_pairs(pairs: Iterable[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError(f"--env {pair!r}: expected NAME=VALUE")
        env[key] = value
    return env


def start_body(args: argparse.Namespace, local: bool) -> dict[str, Any]:
    """The POST /api/agents body of ``start`` and ``run``; ``local``: the daemon is on
    this machine, so the agent runs in the current directory unless ``--cwd`` says."""
    body: dict[str, Any] = {"name": args.name}
    if args.profile:
        if args.argv:
            raise ClientError("give either --profile or a command after '--', not both")
        body["profile"] = args.profile
        if args.prompt is not None:
            body["prompt"] = args.prompt
    elif args.argv:
        if args.prompt is not None:
            raise ClientError("--prompt goes with --profile")
        body["command"] = list(args.argv)
    else:
        raise ClientError("give the command after '--' (start NAME -- CMD ARG…) or --profile")
    cwd = args.cwd
    if cwd is None and local:
        with contextlib.suppress(OSError):  # a directory removed under the shell
            cwd = os.getcwd()
    if cwd:
        body["cwd"] = cwd
    if args.env:
        body["env"] = _env_pairs(args.env)
    if args.format:
        body["format"] = args.format
    if getattr(args, "stdin", False):
        body["stdin"] = True
    if getattr(args, "pty", False):
        body["pty"] = True
    if args.timeout is not None:
        body["timeout_seconds"] = args.timeout
    return body


def start_agent(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    """POST /api/agents. A name still taken by an ended agent is freed first with
    ``--replace``; otherwise the refusal says how to free it, in this tool's words."""
    body = start_body(args, ctx.local)
    try:
        agent: dict[str, Any] = ctx.http.json("POST", "/api/agents", body=body)
        return agent
    except ApiError as exc:
        if exc.code != "agent_exists":
            raise
    name = args.name
    detail = _detail_or_none(ctx, name)
    status = detail.get("status") if detail else None
    if args.replace and status in TERMINAL:
        ctx.http.json("DELETE", agent_path(name))  # its files stay, listed in `runs`
        agent = ctx.http.json("POST", "/api/agents", body=body)
        return agent
    if status in TERMINAL:
        raise ClientError(
            f"an agent named {name!r} already exists ({status}): --replace starts the new "
            f"one in its place, 'trio-wrapper restart {name}' runs its command again "
            "(its runs stay on disk either way)"
        ) from None
    raise ClientError(
        f"an agent named {name!r} already exists and is {status or 'being started'}: "
        f"'trio-wrapper stop {name}' stops it (then --replace), or pick another name"
    ) from None


def _started(ctx: Context, agent: Mapping[str, Any], verb: str = "started") -> None:
    ctx.print(
        f"{verb} {agent['name']} (pid {render.dash(agent.get('pid'))}, "
        f"run {render.dash(agent.get('run_id'))})"
    )


def _stopped(ctx: Context, answer: Mapping[str, Any], suffix: str = "") -> None:
    exit_code = answer.get("exit_code")
    how = ctx.style.status(str(answer.get("status")))
    if exit_code is not None:
        how += f", exit {exit_code}"
    ctx.print(f"{answer.get('message')}: {answer.get('name')} ({how}){suffix}")


# ---- following a stream -------------------------------------------------------------


def follow(
    ctx: Context,
    name: str,
    on_event: Callable[[SseEvent], None],
    *,
    history: int | str = 0,
    from_start: bool = False,
) -> dict[str, Any]:
    """Read the agent's stream until its ``complete`` event; a cut stream is resumed
    with ``Last-Event-ID``. Returns how it ended: ``status``, ``exit_code``, ``signal``."""
    path = agent_path(name, "stream")
    last_id: int | None = 0 if from_start else None
    resumes = 0
    while True:
        query = {"history": history} if last_id is None else None
        for event in ctx.http.stream(path, query=query, last_event_id=last_id):
            if event.id is not None:
                last_id = event.id
            on_event(event)
            if event.event == "complete":
                detail = _detail_or_none(ctx, name)
                signal_name = detail.get("signal") if detail else None
                return {**event.payload, "signal": signal_name}
        # Ended without `complete`: a 204 (it had ended), a cut connection, or a shutdown.
        try:
            detail = ctx.http.get(agent_path(name))
        except DaemonUnreachable:
            raise ClientError(f"the daemon went away before {name} ended") from None
        if detail.get("status") in TERMINAL:
            return {
                "status": detail["status"],
                "exit_code": detail.get("exit_code"),
                "signal": detail.get("signal"),
            }
        resumes += 1
        if resumes > RESUMES:
            raise ClientError(f"the stream of {name} keeps ending before the agent does")
        time.sleep(RESUME_PAUSE)


def _detail_or_none(ctx: Context, name: str) -> dict[str, Any] | None:
    try:
        detail: dict[str, Any] = ctx.http.get(agent_path(name))
        return detail
    except ClientError:
        return None


def exit_status(end: Mapping[str, Any]) -> int:
    """The exit code a shell would give the agent: its own, 128 + the signal that killed
    it, else 1 (ended without one: interrupted, failed to start)."""
    code = end.get("exit_code")
    if isinstance(code, int):
        return code
    name = end.get("signal")
    if isinstance(name, str) and name in signal.Signals.__members__:
        return 128 + int(signal.Signals[name])
    return 1


# ---- the commands -------------------------------------------------------------------


def cmd_ls(ctx: Context, args: argparse.Namespace) -> int:
    listing = ctx.http.get("/api/agents", status=args.status)
    if args.json:
        _print_json(ctx, listing)
        return 0
    agents = listing.get("agents", [])
    if not agents:
        ctx.print("no agents" + (f" with status {args.status}" if args.status else ""))
        return 0
    # Lines, records and errors per agent are in the metrics (one request, not one per agent).
    counts = {a["name"]: a for a in ctx.http.get("/api/metrics").get("agents", [])}
    rows = []
    for agent in agents:
        figures = counts.get(agent["name"], {})
        rows.append(
            [
                agent["name"],
                ctx.style.status(agent["status"]),
                render.dash(agent.get("pid")),
                render.dash(agent.get("uptime")),
                render.ended(agent),
                render.number(figures.get("log_lines")),
                render.number(figures.get("extractions")),
                render.number(figures.get("errors")),
                render.when(agent.get("started_at")),
            ]
        )
    headers = ["NAME", "STATUS", "PID", "UPTIME", "END", "LINES", "RECORDS", "ERRORS", "STARTED"]
    ctx.print(render.table(headers, rows, right=(2, 5, 6, 7)))
    return 0


def cmd_start(ctx: Context, args: argparse.Namespace) -> int:
    agent = start_agent(ctx, args)
    if args.json:
        _print_json(ctx, agent)
    else:
        _started(ctx, agent)
    return 0


def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.http.json("POST", agent_path(args.name, "stop"), query={"force": args.force})
    _stopped(ctx, answer)
    return 0


def cmd_restart(ctx: Context, args: argparse.Namespace) -> int:
    query = {"force": args.force}
    agent = ctx.http.json("POST", agent_path(args.name, "restart"), query=query)
    _started(ctx, agent, "restarted")
    return 0


def cmd_rm(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.http.json("DELETE", agent_path(args.name), query={"force": args.force})
    answer = {**answer, "message": "removed"}
    _stopped(ctx, answer, f"; its files stay on disk ('trio-wrapper runs {args.name}')")
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    detail = ctx.http.get(agent_path(args.name), include_matches=True, limit=RECENT_RECORDS)
    if args.json:
        _print_json(ctx, detail)
        return 0
    streams = detail.get("streams") or {}

    def stream_figures(which: str) -> str:
        figures = streams.get(which) or {}
        return f"{render.number(figures.get('lines'))} lines, {render.size(figures.get('bytes'))}"

    extraction = detail.get("extraction") or {}
    by_type = extraction.get("matches_by_type") or {}
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_type.items()))
    fields = [
        ("name", detail["name"]),
        ("status", ctx.style.status(detail["status"]) + f" ({render.ended(detail)})"),
        ("run", render.dash(detail.get("run_id"))),
        ("command", render.command_line(detail.get("command"))),
        ("profile", render.dash(detail.get("profile"))),
        ("cwd", render.dash(detail.get("cwd"))),
        ("format", render.dash(detail.get("format"))),
        ("pid", render.dash(detail.get("pid"))),
        ("started", render.dash(detail.get("started_at"))),
        ("ended", render.dash(detail.get("completed_at"))),
        ("duration", render.dash(detail.get("uptime"))),
        ("stdout", stream_figures("stdout")),
        ("stderr", stream_figures("stderr")),
        ("stdin", "open" if detail.get("stdin_open") else "closed"),
        ("records", f"{extraction.get('total_matches', 0)}" + (f" ({kinds})" if kinds else "")),
    ]
    if detail.get("stop_reason"):
        fields.append(("stopped by", str(detail["stop_reason"])))
    if detail.get("error"):
        fields.append(("error", ctx.style.paint(str(detail["error"]), render.RED)))
    logs = detail.get("logs") or {}
    fields.append(("logs", render.dash(logs.get("stdout"))))
    width = max(len(k) for k, _ in fields) + 1
    for key, value in fields:
        ctx.print(f"{key + ':':<{width}} {value}")
    recent = [rec for group in (detail.get("matches") or {}).values() for rec in group]
    if recent:
        recent.sort(key=lambda rec: rec.get("line_num", 0))
        ctx.print()
        ctx.print(f"latest records (up to {RECENT_RECORDS} of each kind):")
        for rec in recent:
            line = render.one_line(render.record(rec), 160)
            ctx.print(f"  {render.dash(rec.get('line_num')):>6}  {line}")
    return 0


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    query = {"stream": "stderr" if args.stderr else "stdout", "tail": args.tail}
    answer = ctx.http.request("GET", agent_path(args.name, "logs"), query=query)
    binary = getattr(ctx.out, "buffer", None)
    if binary is not None:
        ctx.out.flush()
        binary.write(answer.body)
        binary.flush()
    else:
        ctx.out.write(answer.body.decode("utf-8", "replace"))
        ctx.out.flush()
    return 0


def cmd_tail(ctx: Context, args: argparse.Namespace) -> int:
    if args.follow:

        def show(event: SseEvent) -> None:
            line = render.stream_event(event, ctx.style)
            if line is not None:
                ctx.print(line)

        follow(ctx, args.name, show, history=args.lines)
        return 0
    # The last lines of each log (the two logs' order between each other is not kept).
    for stream in ("stdout", "stderr"):
        query = {"stream": stream, "tail": args.lines}
        try:
            text = ctx.http.request("GET", agent_path(args.name, "logs"), query=query).body
        except ClientError as exc:
            if getattr(exc, "code", "") == "log_not_found":
                continue
            raise
        for line in text.decode("utf-8", "replace").splitlines():
            mark = ctx.style.paint(render.STDERR_MARK, render.RED) if stream == "stderr" else ""
            ctx.print(mark + line)
    return 0


def cmd_input(ctx: Context, args: argparse.Namespace) -> int:
    if args.text is None and not args.eof:
        raise ClientError("give the TEXT to send, or --eof to close its stdin")
    data = "" if args.text is None else args.text + ("" if args.no_newline else "\n")
    answer = ctx.http.json(
        "POST", agent_path(args.name, "input"), body={"data": data, "eof": args.eof}
    )
    said = f"wrote {answer.get('written', 0)} bytes to {args.name}"
    ctx.print(said + ("; stdin closed" if answer.get("eof") else ""))
    return 0


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    """Start, pass its output through (stdout to stdout, stderr to stderr), exit with its
    code. Ctrl-C stops the agent."""
    agent = start_agent(ctx, args)
    name = agent["name"]
    if args.verbose:
        ctx.note(f"started {name} (pid {agent.get('pid')}, run {agent.get('run_id')})")
    err_style = render.Style(ctx.style.colour and ctx.err.isatty())

    def show(event: SseEvent) -> None:
        data = event.payload
        if event.event == "log":
            target = ctx.err if data.get("stream") == "stderr" else ctx.out
            print(str(data.get("line", "")), file=target, flush=True)
        elif args.verbose or event.event == "gap":
            line = render.stream_event(event, err_style)
            if line is not None:
                print(line, file=ctx.err, flush=True)

    if args.stdin:
        threading.Thread(target=forward_stdin, args=(ctx.http, name), daemon=True).start()
    try:
        end = follow(ctx, name, show, from_start=True)
    except KeyboardInterrupt:
        answer = ctx.http.json("POST", agent_path(name, "stop"))
        ctx.note(f"interrupted: {name} {answer.get('status')}")
        return 130
    code = exit_status(end)
    if args.verbose:
        ctx.note(f"{name} {end.get('status')}, exit code {code}")
    return code


def forward_stdin(http: Http, name: str, chunk_bytes: int = 64 * 1024) -> None:
    """``run --stdin``: what this process reads on its stdin goes to the agent's, as it
    comes; its end closes the agent's stdin. Once the agent no longer takes input (it
    ended, or closed its stdin), the rest is dropped: the agent's end decides the exit."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    fd = sys.stdin.fileno()
    path = agent_path(name, "input")
    try:
        while True:
            chunk = os.read(fd, chunk_bytes)
            data = decoder.decode(chunk, final=not chunk)
            if data or not chunk:
                http.json("POST", path, body={"data": data, "eof": not chunk})
            if not chunk:
                return
    except (OSError, ClientError):
        return


def cmd_runs(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.http.get(agent_path(args.name, "runs"))
    if args.json:
        _print_json(ctx, answer)
        return 0
    rows = []
    for run in answer.get("runs", []):
        usage = run.get("usage") or {}
        tokens = sum((usage.get("tokens") or {}).values()) if usage else None
        lines = sum(s.get("lines", 0) for s in (run.get("streams") or {}).values())
        rows.append(
            [
                run["stamp"] + (" *" if run.get("listed") else ""),
                ctx.style.status(run["status"]),
                render.when(run.get("started_at")),
                render.seconds(run.get("duration_seconds")),
                render.ended(run),
                render.number(lines),
                render.number(tokens),
                render.cost(usage.get("cost_usd") if usage else None),
            ]
        )
    headers = ["RUN", "STATUS", "STARTED", "DURATION", "END", "LINES", "TOKENS", "COST"]
    ctx.print(render.table(headers, rows, right=(3, 5, 6, 7)))
    ctx.print(f"{answer.get('count', len(rows))} run(s); * = the run 'show {args.name}' shows")
    return 0


TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning", "other")


def cmd_usage(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.http.get("/api/usage", group_by=args.by, since=args.since, until=args.until)
    if args.json:
        _print_json(ctx, answer)
        return 0

    def row(key: str, group: Mapping[str, Any]) -> list[str]:
        tokens = group.get("tokens") or {}
        return [
            key,
            render.number(group.get("runs")),
            *(render.number(tokens.get(kind, 0)) for kind in TOKEN_KINDS),
            render.cost(group.get("cost_usd")),
        ]

    rows = [row(render.dash(g.get("key")), g) for g in answer.get("groups", [])]
    rows.append(row("TOTAL", answer.get("total") or {}))
    headers = [args.by.upper(), "RUNS", *(k.upper() for k in TOKEN_KINDS), "COST"]
    ctx.print(render.table(headers, rows, right=range(1, len(headers))))
    return 0


def cmd_metrics(ctx: Context, args: argparse.Namespace) -> int:
    if args.prometheus:
        ctx.out.write(ctx.http.request("GET", "/metrics").body.decode("utf-8", "replace"))
        ctx.out.flush()
        return 0
    metrics = ctx.http.get("/api/metrics")
    if args.json:
        _print_json(ctx, metrics)
        return 0
    system = metrics.get("system") or {}
    sse = metrics.get("sse") or {}
    by_status: dict[str, int] = {}
    for agent in metrics.get("agents", []):
        by_status[agent["status"]] = by_status.get(agent["status"], 0) + 1
    statuses = ", ".join(f"{ctx.style.status(s)} {n}" for s, n in sorted(by_status.items()))
    kinds = ", ".join(
        f"{k} {n}" for k, n in sorted((system.get("extractions_by_type") or {}).items())
    )
    fields = [
        ("version", render.dash(metrics.get("version"))),
        ("uptime", render.seconds(system.get("uptime_seconds"))),
        ("agents", f"{system.get('total_agents', 0)}" + (f" ({statuses})" if statuses else "")),
        ("events", f"{render.number(system.get('total_events'))}"),
        ("events/s", f"{render.number(system.get('events_per_second'))} (last minute)"),
        ("log lines", render.number(system.get("total_logs"))),
        (
            "records",
            render.number(system.get("total_extractions")) + (f" ({kinds})" if kinds else ""),
        ),
        ("sse clients", render.number(sse.get("total_clients"))),
    ]
    width = max(len(k) for k, _ in fields) + 1
    for key, value in fields:
        ctx.print(f"{key + ':':<{width}} {value}")
    return 0


def colour_wanted(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def run(args: argparse.Namespace) -> int:
    """Run the parsed client command; a failure is one line on stderr and exit code 1."""
    handler: Handler = args.handler
    out, err = sys.stdout, sys.stderr
    try:
        http = connect(args)
        style = render.Style(colour_wanted(out))
        ctx = Context(http, out, err, style, local=_loopback(http.endpoint.host))
        return handler(ctx, args)
    except ClientError as exc:
        hint = ""
        if isinstance(exc, ApiError) and exc.code == "unauthorized":
            hint = f"; give the token with --token-file or ${TOKEN_ENV}"
        elif isinstance(exc, ApiError) and exc.code == "not_found":
            hint = "; is --url right? Its path must be the daemon's server.root_path"
        print(f"trio-wrapper: error: {exc}{hint}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's final flush quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return 0
