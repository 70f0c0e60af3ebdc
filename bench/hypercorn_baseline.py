"""Baseline for the idle-SSE-client figure: memory per idle streaming connection of bare
hypercorn (trio worker) serving a minimal ASGI app that sends one event and sleeps.

No trio_wrapper code runs here: this is the floor under any Quart app on this stack.

    .venv/bin/python bench/hypercorn_baseline.py [--clients 5000]
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import time

SERVER = r"""
import sys, trio
from hypercorn.config import Config
from hypercorn.trio import serve

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"event: connected\ndata: {}\n\n",
                "more_body": True})
    await trio.sleep_forever()

config = Config()
config.bind = ["127.0.0.1:" + sys.argv[1]]
config.accesslog = None
trio.run(serve, app, config)
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stderr=subprocess.PIPE)
    sockets: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.05)
        time.sleep(0.5)
        before = rss_kib(server.pid)
        for _ in range(args.clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sockets.append(sock)
        for sock in sockets:
            sock.recv(4096)  # the event: the stream is up
        time.sleep(1)
        after = rss_kib(server.pid)
        print(
            f"bare hypercorn: {(after - before) / args.clients:.1f} KiB per idle stream "
            f"({args.clients} clients, RSS {before} -> {after} KiB)"
        )
        return 0
    finally:
        for sock in sockets:
            sock.close()
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
