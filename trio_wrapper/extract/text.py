"""Format ``text``: any CLI's plain output, with plain ``codex exec``'s layout understood.

Plain ``codex exec`` (codex-rs/exec, human output) writes a banner and a header block
of ``key: value`` lines, then events introduced by a marker line (``user``,
``codex``, ``thinking``, ``exec``, ``file update`` …) whose body runs until the next
marker. An ``exec`` marker is followed by ``<command> in <cwd>`` and, once the
command ends, `` succeeded in 12ms:`` / `` exited 1 in 12ms:`` on the same line; when
commands run in parallel, the next ``exec`` can be glued to a command line with no
newline between. ``tokens used`` comes before the number, on the next line. Older
versions put ``[2025-08-01T12:00:00] `` before each event and used one-line forms
(``exec cmd in cwd``, ``tokens used: N``).

Bodies of ``user``/``codex``/``thinking`` blocks are prose: only code fences are
looked for inside them (a response that says "error: …" is not an error report).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from trio_wrapper.extract.base import error_line, is_error_line
from trio_wrapper.extract.candidates import CandidateLines
from trio_wrapper.extract.numbers import parse_number
from trio_wrapper.extract.records import (
    MAX_LONG_TEXT,
    CodeBlock,
    Error,
    FileOp,
    Metric,
    Prompt,
    Record,
    Response,
    Session,
    State,
    ToolCall,
    short,
)
from trio_wrapper.extract.rules import Rule
from trio_wrapper.extract.scan import LineScanner, StreamState

# Blocks a stream can be in.
NONE: Final = 0
PROMPT: Final = 1
RESPONSE: Final = 2
THINKING: Final = 3
PLAN: Final = 4
EXEC_OUT: Final = 5  # output of a finished command (at most 20 lines, then a marker)
TOOL_OUT: Final = 6  # result of an MCP tool or apply_patch
FILE_UPDATE: Final = 7  # "A path" / "M path" lines, then the patch itself
DIFF: Final = 8  # "file update:" then a unified diff that repeats the patch
HEADER: Final = 9  # the banner's key: value block
PROSE: Final = frozenset({PROMPT, RESPONSE, THINKING, PLAN})

# Event lines are short; a longer line is output, and is kept away from the
# backtracking command regexes (a 64 KiB line full of " in " would be quadratic).
MAX_EVENT_LINE: Final = 4096

EXPECT_COMMAND: Final = 1
EXPECT_TOKENS: Final = 2

_BLOCK_MARKERS: Final = {
    "user": PROMPT,
    "User instructions:": PROMPT,
    "codex": RESPONSE,
    "thinking": THINKING,
    "exec": EXEC_OUT,
    "Plan update": PLAN,
}

# Lines worth a look, by how they begin. Deliberately loose: _line decides exactly.
# RE2 syntax (see extract/candidates.py): [\pL\pN_] is a word character of any script.
_CANDIDATE = CandidateLines(
    r"\n(?:[ \t]{0,3}(?:```|~~~)"
    r"|\[\d{4}-"
    r"|(?:user|codex|thinking|exec|Plan update|User instructions:)[ \t]*$"
    r"|exec |tokens used|file update|mcp(?: startup)?:|ERROR:|deprecated:|tool "
    r"|OpenAI Codex v|--------|codex session |apply_patch|"
    "\U0001f310"  # not raw: RE2 wants the character itself
    r"|task (?:interrupted|aborted)|context compacted"
    r"|[\pL\pN_-]+\.[\pL\pN_-]+\(.*\) (?:success|failed) in "
    r"|[ \t]*(?:succeeded|exited -?\d+) in "
    r"|(?i:model|provider|workdir|session[ _]id|approval|sandbox|reasoning (?:effort|summaries)):"
    r"|(?i:error|fatal|panic|warn)|[\pL\pN_.]*(?:Error|Exception):"
    "|(?:[\u2022*-] )?"  # not raw, as above
    r"(?i:creat|wrot|writ|add|modif|updat|edit|delet|remov|read|file )"
    r")"
)
_TIMESTAMP = re.compile(r"\[\d{4}-\d\d-\d\d[T ][^\]]*\] ")
# Tests run before a pattern, each true of every line the pattern can match (so a line
# that fails one cannot match): a set lookup or a few substring searches cost less than a
# failed match (100-150 ns with the call against 200-770 ns), and most lines looked at
# fail most patterns. Checked against the patterns by tests/extract/test_text_prechecks.py.
#
# _EVENT: the first character of each alternative, but an MCP tool's result line
# ("server.tool(args) success in 12ms:"), which holds one of _MCP_RESULTS instead.
_EVENT_FIRST: Final = frozenset("tfmEwdO-cae\U0001f310")
_MCP_RESULTS: Final = (") success in ", ") failed in ")
# _FILE_LINE: the first letter of its verbs (none is one that another script's letter
# matches case-insensitively: only i, k and s have such), after an optional bullet.
_FILE_VERB_FIRST: Final = frozenset("cwamuedrfCWAMUEDRF")
_BULLETS: Final = frozenset("\u2022*-")
# _EXEC_DONE: the status after the working directory (_EXEC_GLUED: the glued "exec").
_DONE_MARKS: Final = (" succeeded in ", " exited ")
# Event lines of codex's human output that end whatever block was open.
_EVENT = re.compile(
    r"tokens used(?::?[ \t]*(?P<tokens>[0-9][0-9,._]*))?[ \t]*"
    r"|(?P<update>file update)(?P<diff>:)?[ \t]*"
    r"|mcp(?: startup)?: .*"
    r"|(?P<error>ERROR:[ \t]*\S.*)"
    r"|(?P<warning>(?:warning|deprecated):[ \t]*\S.*)"
    r"|OpenAI Codex v(?P<version>[0-9][^ ]*).*"
    r"|(?P<sep>--------)[ \t]*"
    r"|codex session (?P<session_id>\S+)[ \t]*"
    r"|apply_patch\([^)]*\) exited (?P<patch_code>-?\d+)(?: in \S+)?:[ \t]*"
    r"|(?P<mcp_tool>[\w-]+\.[\w-]+)\((?P<mcp_args>.*)\)"
    r" (?P<mcp_status>success|failed) in \S+:[ \t]*"
    r"|tool [\w-]+\.[\w-]+\(.*"
    r"|\U0001f310 Search(?:ed: (?P<search>.*\S)|ed the web|ing the web\.\.\.)[ \t]*"
    r"|(?P<interrupted>task interrupted|task aborted.*)"
    r"|context compacted[ \t]*"
    r"|exec (?P<old_cmd>.+) in (?P<old_cwd>\S.*)"
)
_STATUS = r"(?:(?P<ok>succeeded)|exited (?P<code>-?\d+)) in [0-9][0-9.]*[a-zµ]*:[ \t]*"
_EXEC_DONE = re.compile(r"(?P<cmd>.+) in (?P<cwd>.+?) " + _STATUS)
_EXEC_GLUED = re.compile(r"(?P<cmd>.+) in (?P<cwd>.+?)exec[ \t]*")
_EXEC_BEGUN = re.compile(r"(?P<cmd>.+) in (?P<cwd>\S.*)")
_EXEC_STATUS = re.compile(r"(?P<cmd>.*?)[ \t]*" + _STATUS)
_TOKENS = re.compile(r"[ \t]*[0-9][0-9,._]*[ \t]*")
_HEADER_KV = re.compile(r"(?P<key>[A-Za-z][A-Za-z0-9 _-]{0,40}): (?P<value>.*\S)")
_SESSION_KEY = re.compile(
    r"(?P<key>(?i:model|provider|workdir|session[ _]id|approval|sandbox"
    r"|reasoning effort|reasoning summaries)): (?P<value>\S.*?)[ \t]*"
)
_FILE_ENTRY = re.compile(r"(?P<kind>[AMDR]) (?P<path>\S.*?)(?: -> (?P<dest>\S.*?))?[ \t]*")
# "Created src/app.py", "- Modified: a/b.txt (+3 -1)", "File deleted: x.md". The path
# must look like one (a slash, or an extension starting with a letter) and end the
# line, so "Updated the docs." or "Added 3 tests" do not count.
_PATH = r"[`'\"]?(?P<path>[^\s`'\"]*(?:/[^\s`'\"]*|\.[A-Za-z][\w-]{0,9}))[`'\"]?"
_FILE_LINE = re.compile(
    r"(?:[\u2022*-] )?(?:(?P<verb>(?i:created?|creating|wrote|writing|added|modified|modifying"
    r"|updated|updating|edited|deleted|deleting|removed|read))(?: file)?:?"
    r"|(?i:file) (?P<verb2>(?i:created|modified|updated|deleted))(?: successfully)?(?: at)?:?)"
    r" " + _PATH + r"(?: \(\+\d+ -\d+\))?[ \t]*"
)
_VERB_OPS: Final = {
    "creat": "create",
    "wrote": "create",
    "writi": "create",
    "added": "create",
    "modif": "update",
    "updat": "update",
    "edite": "update",
    "delet": "delete",
    "remov": "delete",
    "read": "read",
}
_ENTRY_OPS: Final = {"A": "create", "M": "update", "D": "delete", "R": "update"}


def snake_key(label: str) -> str:
    """``"session id"`` → ``"session_id"``, ``"Reasoning Effort"`` → ``"reasoning_effort"``."""
    return "_".join(label.lower().replace("-", " ").split())


class TextExtractor(LineScanner):
    CANDIDATE = _CANDIDATE
    LINE_BY_LINE = frozenset({HEADER, FILE_UPDATE})
    FORMAT = "text"

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        super().__init__(rules)
        # Code blocks of the latest codex response: codex prints the final message
        # again on stdout at the end, and its code blocks are not new ones.
        self._echo: set[tuple[str, str]] = set()

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
        core = line
        if core[:1] == "[":
            m = _TIMESTAMP.match(core)
            if m is not None:
                core = core[m.end() :]
        if st.expect and self._expected(st, core, line_num, out):
            return
        if self._marker(st, core, text, start, end, line_num, out):
            return
        block = st.block
        if block in PROSE:
            self._try_open_fence(st, line, end, line_num)
        elif block == EXEC_OUT:
            rec = error_line(core, line_num, "tool")
            if rec is not None:
                out.append(rec)
        elif block == HEADER:
            m = _HEADER_KV.fullmatch(core)
            if m is not None:
                key, value = m.group("key", "value")
                out.append(Session(line_num, snake_key(key), short(value)))
        elif block == FILE_UPDATE:
            m = _FILE_ENTRY.fullmatch(core)
            if m is not None and _looks_like_path(m.group("path")):
                path = m.group("path")
                if m.group("dest"):
                    path = m.group("dest")
                out.append(FileOp(line_num, _ENTRY_OPS[m.group("kind")], path))
        elif block == NONE:
            self._plain(st, line, core, end, line_num, stream, out)

    def _plain(
        self,
        st: StreamState,
        line: str,
        core: str,
        end: int,
        line_num: int,
        stream: str,
        out: list[Record],
    ) -> None:
        if self._try_open_fence(st, line, end, line_num):
            return
        m = _SESSION_KEY.fullmatch(core) if ": " in core else None
        if m is not None:
            out.append(Session(line_num, snake_key(m.group("key")), short(m.group("value"))))
            return
        rec = error_line(core, line_num, stream)
        if rec is not None:
            out.append(rec)
            return
        m = _FILE_LINE.fullmatch(core) if _may_be_file_line(core) else None
        if m is not None:
            verb = (m.group("verb") or m.group("verb2")).lower()
            out.append(
                FileOp(line_num, _VERB_OPS[verb[:5] if verb != "read" else verb], m.group("path"))
            )

    def _expected(self, st: StreamState, core: str, line_num: int, out: list[Record]) -> bool:
        """The line after ``exec`` or ``tokens used``. True if it was consumed."""
        if st.expect == EXPECT_TOKENS:
            st.expect = 0
            if _TOKENS.fullmatch(core):
                number = parse_number(core.strip())
                if number is not None:
                    out.append(Metric(line_num, "tokens_used", number, "tokens"))
                return True
            return False
        st.expect = 0
        if len(core) > MAX_EVENT_LINE:
            st.pending_exec.append((core, line_num))
            return True
        m = _EXEC_DONE.fullmatch(core) if _may_be_done(core) else None
        if m is not None:
            out.append(_tool_call(line_num, m.group("cmd"), m.group("ok"), m.group("code")))
            return True
        m = _EXEC_GLUED.fullmatch(core) if "exec" in core else None
        if m is not None:
            st.pending_exec.append((m.group("cmd"), line_num))
            st.expect = EXPECT_COMMAND
            return True
        m = _EXEC_BEGUN.fullmatch(core)
        command = m.group("cmd") if m is not None else core.strip()
        if command:
            st.pending_exec.append((command, line_num))
        return True

    def _marker(
        self,
        st: StreamState,
        core: str,
        text: bytes,
        start: int,
        end: int,
        line_num: int,
        out: list[Record],
    ) -> bool:
        """Handle a codex event line; False if ``core`` is not one."""
        word = core.rstrip()
        if len(word) > MAX_EVENT_LINE:
            return False
        kind = _BLOCK_MARKERS.get(word)
        if kind is not None:
            self._end_block(st, text, start, out)
            st.block = kind
            st.block_line = line_num
            if kind == EXEC_OUT:
                st.expect = EXPECT_COMMAND
            else:
                st.body.begin(end + 1)
                if kind == RESPONSE:
                    self._echo.clear()
            return True
        if st.pending_exec and ("succeeded" in word or "exited" in word):
            m = _EXEC_STATUS.fullmatch(word)
            if m is not None:
                command, first_line = st.pending_exec.pop(0)
                out.append(_tool_call(first_line, command, m.group("ok"), m.group("code")))
                self._end_block(st, text, start, out)
                st.block = EXEC_OUT
                return True
        if st.block == EXEC_OUT and is_error_line(word):
            return False  # a compiler's "warning: …" is the command's output, not codex's
        if not _may_be_event(word):
            return False
        m = _EVENT.fullmatch(word)
        if m is None:
            return False
        if m.group("sep") is not None and st.block == HEADER and st.header_seps == 0:
            st.header_seps = 1  # the rule under the banner opens the header
            return True
        self._end_block(st, text, start, out)
        st.block = NONE
        self._event(st, m, line_num, out)
        return True

    def _event(self, st: StreamState, m: re.Match[str], line_num: int, out: list[Record]) -> None:
        group = m.group
        if m.group(0).startswith("tokens used"):
            if group("tokens"):
                number = parse_number(group("tokens"))
                if number is not None:
                    out.append(Metric(line_num, "tokens_used", number, "tokens"))
            else:
                st.expect = EXPECT_TOKENS
        elif group("update"):
            st.block = DIFF if group("diff") else FILE_UPDATE
        elif group("error") is not None:
            out.append(_error(line_num, group("error"), "agent"))
        elif group("warning") is not None:
            out.append(_error(line_num, group("warning"), "agent"))
        elif group("version") is not None:
            out.append(Session(line_num, "version", group("version")))
            st.block = HEADER
            st.header_seps = 0
        elif group("session_id") is not None:
            out.append(Session(line_num, "session_id", group("session_id")))
        elif group("patch_code") is not None:
            code = int(group("patch_code"))
            status = "completed" if code == 0 else "failed"
            out.append(ToolCall(line_num, "apply_patch", "", status, code))
            st.block = TOOL_OUT
        elif group("mcp_tool") is not None:
            status = "completed" if group("mcp_status") == "success" else "failed"
            out.append(ToolCall(line_num, group("mcp_tool"), short(group("mcp_args")), status))
            st.block = TOOL_OUT
        elif group("search") is not None:
            out.append(ToolCall(line_num, "web_search", short(group("search")), "completed"))
        elif group("interrupted") is not None:
            out.append(State(line_num, "interrupted", group("interrupted")))
        elif group("old_cmd") is not None:
            st.pending_exec.append((group("old_cmd"), line_num))

    def _end_block(self, st: StreamState, text: bytes, start: int, out: list[Record]) -> None:
        if not st.body.is_open:
            return
        body, _ = st.body.close(text, start)
        self._emit_prose(st, body, out)

    def _emit_prose(self, st: StreamState, body: str, out: list[Record]) -> None:
        body = body.strip()
        if not body:
            return
        block, line_num = st.block, st.block_line
        if block == PROMPT:
            out.append(Prompt(line_num, body[:MAX_LONG_TEXT]))
        elif block == RESPONSE:
            out.append(Response(line_num, body[:MAX_LONG_TEXT]))
        elif block == THINKING:
            out.append(State(line_num, "thinking", short(body)))
        elif block == PLAN:
            out.append(State(line_num, "plan", short(body)))

    def _emit_block(self, st: StreamState, block: CodeBlock, out: list[Record]) -> None:
        key = (block.language, block.content)
        if st.block == RESPONSE:
            self._echo.add(key)
        elif st.block == NONE and key in self._echo:
            return  # codex's final-message echo on stdout
        out.append(block)

    def _finish_stream(self, st: StreamState, stream: str, out: list[Record]) -> None:
        if st.fence is not None:
            content, nlines = st.code.finish()
            self._emit_block(st, CodeBlock(st.fence_line, st.fence.language, nlines, content), out)
            st.fence = None
        if st.body.is_open:
            body, _ = st.body.finish()
            self._emit_prose(st, body, out)
        for command, line_num in st.pending_exec:
            out.append(ToolCall(line_num, "shell", short(command), "unknown"))
        st.pending_exec = []
        st.block = NONE


def _tool_call(line_num: int, command: str, ok: str | None, code: str | None) -> ToolCall:
    exit_code = 0 if ok else int(code or 0)
    status = "completed" if exit_code == 0 else "failed"
    return ToolCall(line_num, "shell", short(command.strip()), status, exit_code)


def _error(line_num: int, message: str, source: str) -> Record:
    return Error(line_num, short(message), source)


def _may_be_event(word: str) -> bool:
    """False for a line _EVENT cannot match (see _EVENT_FIRST)."""
    return word[:1] in _EVENT_FIRST or _MCP_RESULTS[0] in word or _MCP_RESULTS[1] in word


def _may_be_done(core: str) -> bool:
    """False for a line _EXEC_DONE cannot match (see _DONE_MARKS)."""
    return _DONE_MARKS[0] in core or _DONE_MARKS[1] in core


def _may_be_file_line(core: str) -> bool:
    """False for a line _FILE_LINE cannot match (see _FILE_VERB_FIRST)."""
    first = core[:1]
    if first in _BULLETS:
        return core[1:2] == " " and core[2:3] in _FILE_VERB_FIRST
    return first in _FILE_VERB_FIRST


def _looks_like_path(path: str) -> bool:
    return "/" in path or "." in path or "\\" in path
