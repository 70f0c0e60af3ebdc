"""Format ``aider``: aider's terminal output (it has no structured mode).

The banner (``Aider v0.86.2``, ``Model: … with whole edit format``, ``Main model:``,
``Models:``, ``Git repo:``, ``Repo-map:``), the per-message cost line
(``Tokens: 15k sent, 191 received. Cost: $0.04 message, $0.04 session.``; older:
``… Cost: $0.02 request, $0.02 session.``; with prompt caching also ``… cache write``
and ``… cache hit`` parts), ``Applied edit to <path>``, ``Commit <sha> <message>``,
plus fenced code blocks and error/warning lines as in plain text.
"""

from __future__ import annotations

import re
from typing import Final

from trio_wrapper.extract.base import error_line
from trio_wrapper.extract.candidates import CandidateLines
from trio_wrapper.extract.numbers import parse_number
from trio_wrapper.extract.records import (
    Error,
    FileOp,
    Metric,
    Record,
    Session,
    State,
    short,
)
from trio_wrapper.extract.scan import LineScanner, StreamState

# Lines worth a look (RE2 syntax, see extract/candidates.py); _line decides exactly.
_CANDIDATE = CandidateLines(
    r"\n(?:[ \t]{0,3}(?:```|~~~)"
    r"|Aider v|(?:Main |Weak |Editor )?[Mm]odels?:|Git repo:|Repo-map:|Tokens:"
    r"|Applied edit|Did not apply|Creating empty file|Commit |\^C "
    r"|(?i:error|fatal|panic|warn)|[\pL\pN_.]*(?:Error|Exception):"
    r")"
)
_LINE = re.compile(
    r"Aider v(?P<version>[0-9]\S*)"
    r"|(?P<label>Main model|Model|Weak model|Editor model): (?P<model>\S+)"
    r"(?: with (?P<edit_format>\S+) edit format)?.*"
    r"|Models: (?P<models>\S+) with (?P<edit_format2>\S+) edit format"
    r"(?:, weak model (?P<weak>\S+))?.*"
    r"|Git repo: (?P<repo>\S+)(?: with (?P<files>[0-9][0-9,]*) files)?.*"
    r"|Repo-map: (?P<repo_map>.*\S)"
    r"|Tokens: (?P<tokens>.*? received\.)"
    r"(?: Cost: \$(?P<cost>[0-9.,]+) (?:message|request),"
    r" \$(?P<session_cost>[0-9.,]+) session\.)?.*"
    r"|Applied edit to (?P<applied>\S.*?)"
    r"|Creating empty file (?P<created>\S.*?)"
    r"|Did not apply edit to (?P<failed>\S.*?)(?: \(.*\))?"
    r"|Commit (?P<sha>[0-9a-f]{7,40}) (?P<message>.*\S)"
    r"|\^C (?P<interrupt>KeyboardInterrupt)"
)
_TOKEN_PART = re.compile(r"([0-9][0-9.,]*[kKmM]?) (sent|received|cache write|cache hit)")
_MODEL_KEYS: Final = {
    "Main model": "model",
    "Model": "model",
    "Weak model": "weak_model",
    "Editor model": "editor_model",
}


class AiderExtractor(LineScanner):
    CANDIDATE = _CANDIDATE
    FORMAT = "aider"

    def _line(
        self,
        st: StreamState,
        line: str,
        text: bytes,
        start: int,
        end: int,
        line_num: int,
        stream: str,
        out: list[Record],
    ) -> None:
        if self._try_open_fence(st, line, end, line_num):
            return
        core = line.rstrip()
        m = _LINE.fullmatch(core)
        if m is not None:
            _aider_line(m, line_num, out)
            return
        rec = error_line(core, line_num, stream)
        if rec is not None:
            out.append(rec)


def _aider_line(m: re.Match[str], line_num: int, out: list[Record]) -> None:
    group = m.group
    if group("version") is not None:
        out.append(Session(line_num, "version", group("version")))
    elif group("label") is not None:
        out.append(Session(line_num, _MODEL_KEYS[group("label")], group("model")))
        if group("edit_format"):
            out.append(Session(line_num, "edit_format", group("edit_format")))
    elif group("models") is not None:
        out.append(Session(line_num, "model", group("models")))
        out.append(Session(line_num, "edit_format", group("edit_format2")))
        if group("weak"):
            out.append(Session(line_num, "weak_model", group("weak")))
    elif group("repo") is not None:
        out.append(Session(line_num, "git_repo", group("repo")))
        files = parse_number(group("files") or "")
        if files is not None:
            out.append(Metric(line_num, "repo_files", files, "files"))
    elif group("repo_map") is not None:
        out.append(Session(line_num, "repo_map", short(group("repo_map"))))
    elif group("tokens") is not None:
        for amount, what in _TOKEN_PART.findall(group("tokens")):
            number = parse_number(amount)
            if number is not None:
                key = "tokens_" + what.replace(" ", "_")
                out.append(Metric(line_num, key, number, "tokens"))
        for key, name in (("cost_usd", "cost"), ("session_cost_usd", "session_cost")):
            number = parse_number(group(name) or "")
            if number is not None:
                out.append(Metric(line_num, key, number, "usd"))
    elif group("applied") is not None:
        out.append(FileOp(line_num, "update", group("applied")))
    elif group("created") is not None:
        out.append(FileOp(line_num, "create", group("created")))
    elif group("failed") is not None:
        out.append(Error(line_num, short(m.group(0)), "agent"))
    elif group("sha") is not None:
        out.append(State(line_num, "commit", f"{group('sha')} {short(group('message'))}"))
    elif group("interrupt") is not None:
        out.append(State(line_num, "interrupted", "KeyboardInterrupt"))
