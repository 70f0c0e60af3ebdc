"""``make fuzz``, part one: schemathesis against a real daemon's ``/openapi.json``.

Starts ``trio-wrapper serve`` on an ephemeral loopback port (with a token, and with
``agents.allowed_commands = ["true"]`` so that generated commands never run anything
else), runs ``schemathesis run`` over every operation but the SSE streams (a valid
request there stays open by design), a bounded number of examples each, and checks: no
5xx, responses as documented. Then the daemon must still be healthy, its log free of
tracebacks. Ends with one summary line; exit status 0 only if all of it held.

    python -m tests.fuzz.openapi [--max-examples N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.daemon import running_daemon

TOKEN = "fuzz-s3cret"
TIME_LIMIT = 900  # seconds for the whole schemathesis run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=50)
    args = parser.parse_args(argv)
    env = {"TRIO_WRAPPER_AUTH_TOKEN": TOKEN, "TRIO_WRAPPER_AGENTS_ALLOWED_COMMANDS": "true"}
    with (
        tempfile.TemporaryDirectory(prefix="fuzz-") as tmp,
        running_daemon(Path(tmp), env=env) as daemon,
    ):
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{daemon.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            str(args.max_examples),
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--exclude-path-regex",
            r"^/api/(events|agents/\{name\}(/runs/\{stamp\})?/stream)$",
            # Generous: on a loaded 2-core machine a first run saw two 10 s read timeouts
            # that no retry reproduced (both requests answer 404 in milliseconds).
            "--request-timeout",
            "30",
            "--max-time",
            str(TIME_LIMIT - 60),
            "--no-color",
        ]
        try:
            result = subprocess.run(command, timeout=TIME_LIMIT, check=False)
            status = result.returncode
        except subprocess.TimeoutExpired:
            print(f"schemathesis did not finish within {TIME_LIMIT} s", file=sys.stderr)
            status = 124
        with daemon.client() as http:
            healthy = http.get("/api/health").status_code == 200
        clean = "Traceback" not in daemon.log and "Error in ASGI" not in daemon.log
        if not clean:
            print(daemon.log[-5000:], file=sys.stderr)
    ok = status == 0 and healthy and clean
    print(
        f"fuzz openapi: {'passed' if ok else 'FAILED'} (schemathesis exit {status}, "
        f"daemon {'healthy' if healthy else 'UNHEALTHY'}, "
        f"log {'clean' if clean else 'has tracebacks'}, {args.max_examples} examples/operation)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
