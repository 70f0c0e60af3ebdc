"""Format ``gemini-stream-json``: ``gemini -p … --output-format stream-json``.

Events: ``init``, ``message`` (user, or assistant text in several ``"delta": true``
pieces that make one response), ``tool_use``, ``tool_result``, ``error``, ``result``
(with ``stats``). ``--output-format json`` instead prints one pretty-printed object
over many lines (``{`` alone on the first): it is collected and read as a whole.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from trio_wrapper.extract.jsonl import (
    JsonLinesExtractor,
    add_metric,
    as_dict,
    compact,
    get_dict,
    get_str,
    response_records,
    unit_for,
)
from trio_wrapper.extract.records import (
    MAX_LONG_TEXT,
    Error,
    FileOp,
    Prompt,
    Record,
    Session,
    ToolCall,
    short,
)

_FILE_TOOLS: Final = {
    "write_file": "create",
    "replace": "update",
    "edit": "update",
    "read_file": "read",
}
_PATH_KEYS: Final = ("file_path", "absolute_path", "path")
_MAIN_INPUT: Final = ("command", "file_path", "absolute_path", "path", "pattern", "query", "url")
# A pretty-printed document bigger than this is not going to be a CLI's summary.
_MAX_DOCUMENT_BYTES: Final = 8 * 1024 * 1024
# Stats subtrees that are breakdowns, not figures of the run.
_SKIP_STATS: Final = frozenset({"byName", "totalDecisions", "decisions"})


class GeminiJsonExtractor(JsonLinesExtractor[dict[str, Any]]):
    FORMAT = "gemini-stream-json"

    def __init__(self, rules: Any = ()) -> None:
        super().__init__(rules)
        self._deltas: list[str] = []
        self._delta_line = 0
        self._document: list[bytes] = []
        self._document_size = 0
        self._document_line = 0

    def finish(self) -> list[Record]:
        out: list[Record] = []
        self._flush(out)
        return out

    def _flush(self, out: list[Record]) -> None:
        """Join the assistant's pending deltas into one response."""
        if self._deltas:
            text = "".join(self._deltas)
            self._deltas = []
            response_records(text, self._delta_line, out)

    def _handle(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        kind = obj.get("type")
        if kind == "message":
            role = obj.get("role")
            content = get_str(obj, "content")
            if role == "assistant":
                if obj.get("delta") is True:
                    if not content:
                        return
                    if not self._deltas:
                        self._delta_line = line_num
                    self._deltas.append(content)
                    return
                self._flush(out)
                response_records(content, line_num, out)
                return
            self._flush(out)
            if role == "user" and content.strip():
                out.append(Prompt(line_num, content[:MAX_LONG_TEXT]))
            return
        self._flush(out)
        if kind == "init":
            for key in ("session_id", "model"):
                value = get_str(obj, key)
                if value:
                    out.append(Session(line_num, key, short(value)))
        elif kind == "tool_use":
            self._tool_use(obj, line_num, out)
        elif kind == "tool_result":
            if obj.get("status") == "error":
                error = get_dict(obj, "error")
                message = get_str(error, "message") or get_str(obj, "output") or "tool error"
                out.append(Error(line_num, short(message), "tool"))
        elif kind == "error":
            message = get_str(obj, "message")
            if message:
                out.append(Error(line_num, short(message), "agent"))
        elif kind == "result":
            if obj.get("status") == "error":
                error = get_dict(obj, "error")
                message = get_str(error, "message") or get_str(obj, "message") or "error"
                out.append(Error(line_num, short(message), "agent"))
            for key, value in get_dict(obj, "stats").items():
                add_metric(out, line_num, key, value, unit_for(key))
        else:
            self._note_unknown(kind if type(kind) is str else "")

    def _tool_use(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        name = get_str(obj, "tool_name")
        params = get_dict(obj, "parameters")
        summary = next((get_str(params, k) for k in _MAIN_INPUT if get_str(params, k)), "")
        out.append(ToolCall(line_num, name, summary or compact(params), "started"))
        op = _FILE_TOOLS.get(name)
        if op is not None:
            path = next((get_str(params, k) for k in _PATH_KEYS if get_str(params, k)), "")
            if path:
                out.append(FileOp(line_num, op, path))

    # ``--output-format json``: one object over many lines.

    def _other(self, raw: bytes, line_num: int, stream: str, out: list[Record]) -> None:
        if raw.rstrip() == b"{" and stream == "stdout":
            self._capturing = True
            self._document = [raw]
            self._document_size = len(raw)
            self._document_line = line_num
            return
        super()._other(raw, line_num, stream, out)

    def _capture(self, raw: bytes, line_num: int, out: list[Record]) -> None:
        if raw[:1] not in (b" ", b"\t", b"}", b""):
            # JSON.stringify indents every inner line: anything at column 0 means the
            # "{" was not the start of a document. Read this line normally.
            self._capturing = False
            self._document = []
            self._feed_one(raw, line_num, "stdout", out)
            return
        self._document.append(raw)
        self._document_size += len(raw) + 1
        if raw.rstrip() == b"}":
            self._capturing = False
            document, self._document = b"\n".join(self._document), []
            try:
                obj = msgspec.json.decode(document)
            except msgspec.DecodeError:
                return
            if type(obj) is dict:
                self._document_records(obj, self._document_line, out)
        elif self._document_size > _MAX_DOCUMENT_BYTES:
            self._capturing = False
            self._document = []

    def _document_records(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        stats = get_dict(obj, "stats")
        models = [name for name in get_dict(stats, "models") if name]
        if models:
            out.append(Session(line_num, "model", models[0]))
        response_records(get_str(obj, "response"), line_num, out)
        error = get_dict(obj, "error")
        if error:
            out.append(Error(line_num, short(get_str(error, "message") or "error"), "agent"))
        _flat_metrics(stats, "", line_num, out)


def _flat_metrics(tree: dict[str, Any], prefix: str, line_num: int, out: list[Record]) -> None:
    """Numeric leaves of ``stats`` as metrics named by their path
    (``models.gemini-2.5-pro.tokens.prompt``)."""
    for key, value in tree.items():
        if key in _SKIP_STATS:
            continue
        if type(value) is dict:
            _flat_metrics(as_dict(value), f"{prefix}{key}.", line_num, out)
        else:
            add_metric(out, line_num, prefix + key, value, unit_for(prefix + key))
