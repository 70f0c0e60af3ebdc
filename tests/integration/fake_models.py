"""Fake model servers for the real agent CLIs: one class per API, each on 127.0.0.1.

- ``FakeAnthropic``: ``POST /v1/messages`` (Claude Code), streaming SSE or one JSON body.
- ``FakeOpenAIResponses``: ``POST /v1/responses`` (Codex), streaming SSE.
- ``FakeGemini``: ``POST /v1beta/models/M:streamGenerateContent?alt=sse`` and
  ``:generateContent`` (Gemini CLI).
- ``FakeOpenAIChat``: ``POST /v1/chat/completions`` (Aider, any OpenAI-compatible client),
  streaming or not.

Each answers from a ``Script``: a list of ``Turn``s, each either tool calls or a final text,
with token usage. Which turn a request gets is read from the conversation it sends (how many
assistant/model turns it already holds), so a CLI's retries or a request it makes on the side
(a title, a next-speaker check) never shifts the script: a side request without the
conversation's tools gets a plain text answer (``Script.side_text``). Every request is kept
in ``server.requests`` (path and decoded body) for the test to read.

Standard library only (``http.server`` in a thread), so a test, another helper or a shell
(``python -m tests.integration.fake_models anthropic``) can run it anywhere::

    script = Script([Turn(tool_calls=[Call("Bash", {"command": "echo hi > a.txt"})]),
                     Turn(text="done")])
    with FakeAnthropic(script) as server:
        env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "fake"}
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

JSON = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One tool call: the tool's name as the CLI offers it, and its arguments (a string for
    a freeform tool of the responses API, e.g. Codex's ``apply_patch``: a
    ``custom_tool_call`` with that ``input``)."""

    name: str
    arguments: JSON | str


@dataclass(frozen=True)
class Turn:
    """One answer of the model: tool calls (the CLI runs them and asks again) or, without
    any, a final ``text``. ``text`` beside tool calls is said before them."""

    text: str = ""
    tool_calls: Sequence[Call] = ()
    input_tokens: int = 1200
    output_tokens: int = 40
    cached_tokens: int = 0


@dataclass
class Script:
    """The turns of one conversation, in order; past the last, the last again."""

    turns: Sequence[Turn]
    side_text: str = "ok"
    model: str = ""  # the model the answers name ("" = the one asked for)

    def turn(self, index: int) -> Turn:
        return self.turns[min(index, len(self.turns) - 1)]


@dataclass
class Request:
    method: str
    path: str
    body: Any
    turn: int | None = None  # the script's turn it was answered with (None: side answer)


@dataclass
class _State:
    script: Script
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeModelServer:
    """A threaded HTTP server on 127.0.0.1 (port 0 = any free one) answering from a script.
    Subclasses implement ``answer``. Use as a context manager, or ``start``/``stop``."""

    API = ""

    def __init__(self, script: Script, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = _State(script)
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life -------------------------------------------------------------------------

    def start(self) -> FakeModelServer:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"fake-{self.API}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path: each CLI adds its own)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)

    def conversation_requests(self) -> list[Request]:
        """The requests answered from the script (not side requests)."""
        return [r for r in self.requests if r.turn is not None]

    # --- answering --------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self.state.ids)

    def _models(self, method: str, path: str, body: Any) -> _Answer:
        """``GET …/models`` of the OpenAI APIs: the scripted model alone."""
        self.record(Request(method, path, body))
        model = self.state.script.model or "gpt-fake"
        return _json_answer({"object": "list", "data": [{"id": model, "object": "model"}]})

    def record(self, request: Request) -> None:
        with self.state.lock:
            self.state.requests.append(request)

    def answer(self, method: str, path: str, query: str, body: Any) -> _Answer:
        raise NotImplementedError


@dataclass
class _Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


def _json_answer(obj: Any, status: int = 200) -> _Answer:
    return _Answer(status, json.dumps(obj).encode(), "application/json")


def _sse(events: Iterable[tuple[str | None, Any]]) -> _Answer:
    """Server-sent events: ``event: NAME`` (when named) and ``data: JSON`` each."""
    out: list[str] = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        text = data if isinstance(data, str) else json.dumps(data)
        out.append(f"data: {text}\n\n")
    return _Answer(200, "".join(out).encode(), "text/event-stream")


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            try:
                answer = server.answer(self.command, parts.path, parts.query, body)
            except Exception as exc:  # a bug here must show in the CLI's output, not hang it
                answer = _json_answer({"error": {"message": f"fake server: {exc!r}"}}, 500)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()

        do_GET = _serve
        do_POST = _serve

    return Handler


def _not_found(server: FakeModelServer, method: str, path: str, body: Any) -> _Answer:
    server.record(Request(method, path, body))
    return _json_answer(
        {"error": {"message": f"no {method} {path} here", "type": "not_found"}}, 404
    )


# --- Anthropic messages ----------------------------------------------------------------


class FakeAnthropic(FakeModelServer):
    """``POST /v1/messages``: ``tool_use`` blocks, then a final text; ``usage`` on each."""

    API = "anthropic"

    def answer(self, method: str, path: str, query: str, body: Any) -> _Answer:
        if method == "POST" and path.endswith("/v1/messages/count_tokens"):
            self.record(Request(method, path, body))
            return _json_answer({"input_tokens": 100})
        if method != "POST" or not path.endswith("/v1/messages") or not isinstance(body, dict):
            return _not_found(self, method, path, body)
        script = self.state.script
        model = script.model or str(body.get("model") or "claude-fake")
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        index: int | None = sum(1 for m in messages if m.get("role") == "assistant")
        turn = script.turn(index or 0)
        if any(call.name not in tools for call in turn.tool_calls):
            index, turn = None, Turn(text=script.side_text, input_tokens=50, output_tokens=5)
        self.record(Request(method, path, body, index))
        message_id = f"msg_fake_{self.next_id():04d}"
        blocks: list[JSON] = []
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        for call in turn.tool_calls:
            tool_id = f"toolu_fake_{self.next_id():04d}"
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": call.name, "input": call.arguments}
            )
        stop = "tool_use" if turn.tool_calls else "end_turn"
        usage = {
            "input_tokens": turn.input_tokens,
            "output_tokens": turn.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": turn.cached_tokens,
        }
        if not body.get("stream"):
            return _json_answer(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )
        events: list[tuple[str | None, Any]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            )
        ]
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                start = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": start},
                )
            )
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})
            )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": turn.output_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return _sse(events)


# --- OpenAI responses ------------------------------------------------------------------


class FakeOpenAIResponses(FakeModelServer):
    """``POST /v1/responses`` (streaming): ``function_call`` items, then an assistant
    message; ``usage`` in ``response.completed``. ``GET /v1/models`` lists the model."""

    API = "openai-responses"

    def answer(self, method: str, path: str, query: str, body: Any) -> _Answer:
        script = self.state.script
        if method == "GET" and path.endswith("/models"):
            return self._models(method, path, body)
        if method != "POST" or not path.endswith("/responses") or not isinstance(body, dict):
            return _not_found(self, method, path, body)
        model = script.model or str(body.get("model") or "gpt-fake")
        items = body.get("input")
        items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        tools = {_tool_name(t) for t in body.get("tools") or [] if isinstance(t, dict)}
        # One assistant turn = one run of model items (messages, calls) between inputs.
        index: int | None = _turns_in(items)
        turn = script.turn(index or 0)
        if any(call.name not in tools for call in turn.tool_calls):
            index, turn = None, Turn(text=script.side_text, input_tokens=50, output_tokens=5)
        self.record(Request(method, path, body, index))
        response_id = f"resp_fake_{self.next_id():04d}"
        output: list[JSON] = []
        if turn.text:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_fake_{self.next_id():04d}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
                }
            )
        for call in turn.tool_calls:
            if isinstance(call.arguments, str):
                output.append(
                    {
                        "type": "custom_tool_call",
                        "id": f"ctc_fake_{self.next_id():04d}",
                        "call_id": f"call_fake_{self.next_id():04d}",
                        "name": call.name,
                        "input": call.arguments,
                        "status": "completed",
                    }
                )
                continue
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_fake_{self.next_id():04d}",
                    "call_id": f"call_fake_{self.next_id():04d}",
                    "name": call.name,
                    "arguments": json.dumps(call.arguments),
                    "status": "completed",
                }
            )
        usage = {
            "input_tokens": turn.input_tokens,
            "input_tokens_details": {"cached_tokens": turn.cached_tokens},
            "output_tokens": turn.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": turn.input_tokens + turn.output_tokens,
        }
        base = {"id": response_id, "object": "response", "created_at": int(time.time())}
        base |= {"model": model}
        events: list[tuple[str | None, Any]] = [
            (
                "response.created",
                {
                    "type": "response.created",
                    "response": {**base, "status": "in_progress", "output": []},
                },
            )
        ]
        for i, item in enumerate(output):
            events.append(
                (
                    "response.output_item.added",
                    {"type": "response.output_item.added", "output_index": i, "item": item},
                )
            )
            if item["type"] == "message":
                events.append(
                    (
                        "response.output_text.delta",
                        {
                            "type": "response.output_text.delta",
                            "item_id": item["id"],
                            "output_index": i,
                            "content_index": 0,
                            "delta": turn.text,
                        },
                    )
                )
            events.append(
                (
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": i, "item": item},
                )
            )
        completed = {**base, "status": "completed", "output": output, "usage": usage}
        events.append(("response.completed", {"type": "response.completed", "response": completed}))
        return _sse(events)


def _tool_name(tool: JSON) -> str:
    name = tool.get("name")
    if isinstance(name, str):
        return name
    function = tool.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return str(function["name"])
    return str(tool.get("type") or "")


def _turns_in(items: list[JSON]) -> int:
    """How many model turns an input list holds: runs of assistant messages and calls."""
    turns = 0
    in_turn = False
    for item in items:
        mine = item.get("type") in ("function_call", "custom_tool_call", "reasoning") or (
            item.get("type", "message") == "message" and item.get("role") == "assistant"
        )
        if mine and not in_turn:
            turns += 1
        in_turn = mine
    return turns


# --- Gemini ----------------------------------------------------------------------------


class FakeGemini(FakeModelServer):
    """``:streamGenerateContent?alt=sse`` and ``:generateContent``: ``functionCall`` parts,
    then text; ``usageMetadata`` on each. ``:countTokens`` and model listing answered too."""

    API = "gemini"

    def answer(self, method: str, path: str, query: str, body: Any) -> _Answer:
        script = self.state.script
        if method == "GET" and "/models" in path:
            self.record(Request(method, path, body))
            return _json_answer({"models": []})
        if method != "POST" or ":" not in path or not isinstance(body, dict):
            return _not_found(self, method, path, body)
        model_path, _, verb = path.rpartition(":")
        model = script.model or model_path.rsplit("/", 1)[-1] or "gemini-fake"
        if verb == "countTokens":
            self.record(Request(method, path, body))
            return _json_answer({"totalTokens": 100})
        if verb not in ("generateContent", "streamGenerateContent"):
            return _not_found(self, method, path, body)
        contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
        tools = {
            d.get("name")
            for t in body.get("tools") or []
            if isinstance(t, dict)
            for d in t.get("functionDeclarations") or []
            if isinstance(d, dict)
        }
        # Schema-constrained side calls (next speaker, loop checks) get plain JSON text.
        constrained = isinstance(body.get("generationConfig"), dict) and (
            body["generationConfig"].get("responseJsonSchema")
            or body["generationConfig"].get("responseSchema")
        )
        index: int | None = sum(1 for c in contents if c.get("role") == "model")
        turn = script.turn(index or 0)
        if constrained or any(call.name not in tools for call in turn.tool_calls):
            index = None
            text = _side_json(body) if constrained else script.side_text
            turn = Turn(text=text, input_tokens=50, output_tokens=5)
        self.record(Request(method, path, body, index))
        parts: list[JSON] = []
        if turn.text:
            parts.append({"text": turn.text})
        for call in turn.tool_calls:
            parts.append({"functionCall": {"name": call.name, "args": call.arguments}})
        chunk = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": turn.input_tokens,
                "candidatesTokenCount": turn.output_tokens,
                "cachedContentTokenCount": turn.cached_tokens,
                "totalTokenCount": turn.input_tokens + turn.output_tokens,
            },
            "modelVersion": model,
            "responseId": f"fake-{self.next_id():04d}",
        }
        if verb == "generateContent":
            return _json_answer(chunk)
        return _sse([(None, chunk)])


def _side_json(body: JSON) -> str:
    """A JSON answer for a schema-constrained side call: the next speaker is the user, no
    loop, no complexity (Gemini CLI's checks); anything else gets ``{}``."""
    text = json.dumps(body)
    if "next_speaker" in text:
        return json.dumps({"reasoning": "the task is done", "next_speaker": "user"})
    return json.dumps({})


# --- OpenAI chat completions -----------------------------------------------------------


class FakeOpenAIChat(FakeModelServer):
    """``POST /v1/chat/completions``: ``tool_calls`` when the script has them (and the
    request offers those tools), else text; usage in the last chunk when streaming."""

    API = "openai-chat"

    def answer(self, method: str, path: str, query: str, body: Any) -> _Answer:
        script = self.state.script
        if method == "GET" and path.endswith("/models"):
            return self._models(method, path, body)
        if method != "POST" or not path.endswith("/chat/completions") or not isinstance(body, dict):
            return _not_found(self, method, path, body)
        model = script.model or str(body.get("model") or "gpt-fake")
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        tools = {_tool_name(t) for t in body.get("tools") or [] if isinstance(t, dict)}
        index: int | None = sum(1 for m in messages if m.get("role") == "assistant")
        turn = script.turn(index or 0)
        if any(call.name not in tools for call in turn.tool_calls):
            index, turn = None, Turn(text=script.side_text, input_tokens=50, output_tokens=5)
        self.record(Request(method, path, body, index))
        completion_id = f"chatcmpl-fake-{self.next_id():04d}"
        created = int(time.time())
        calls = [
            {
                "index": i,
                "id": f"call_fake_{self.next_id():04d}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for i, call in enumerate(turn.tool_calls)
        ]
        finish = "tool_calls" if calls else "stop"
        usage = {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "prompt_tokens_details": {"cached_tokens": turn.cached_tokens},
        }
        message: JSON = {"role": "assistant", "content": turn.text or None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        head = {"id": completion_id, "created": created, "model": model}
        if not body.get("stream"):
            return _json_answer(
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        chunk = {**head, "object": "chat.completion.chunk"}
        delta: JSON = {"role": "assistant", "content": turn.text or ""}
        if calls:
            delta["tool_calls"] = calls
        events: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
            (None, {**chunk, "choices": [], "usage": usage}),
            (None, "[DONE]"),
        ]
        return _sse(events)


SERVERS: dict[str, type[FakeModelServer]] = {
    "anthropic": FakeAnthropic,
    "openai-responses": FakeOpenAIResponses,
    "gemini": FakeGemini,
    "openai-chat": FakeOpenAIChat,
}


def main(argv: Sequence[str]) -> int:
    """``python -m tests.integration.fake_models API [PORT]``: one final text answer, for
    trying a CLI by hand; prints the base URL and serves until interrupted."""
    if not argv or argv[0] not in SERVERS:
        print(f"usage: fake_models {{{','.join(SERVERS)}}} [PORT]", file=sys.stderr)
        return 2
    port = int(argv[1]) if len(argv) > 1 else 0
    server = SERVERS[argv[0]](Script([Turn(text="Hello from the fake model.")]), port=port)
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
