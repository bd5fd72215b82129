"""The demo's loopback server: an HTTP proxy that answers only for the demo's fake host.

The demo pool's urls are `http://modeflow-demo.invalid/images/<file>`, stable across runs so uids
and outputs never depend on a port. img2dataset fetches them with urllib, which sends
`GET http://modeflow-demo.invalid/images/x.png` to whatever `http_proxy` names: this server maps
that absolute url onto a file under its root. `.invalid` (RFC 2606) can never resolve, so a
misconfigured run fails loudly rather than reaching the internet.

Runs as its own process (`python -m modeflow.demo.httpserver --root DIR --port 0`, which prints the
port) so image serving does not compete with the caller's GIL, and so it can be stopped by pid.
"""

from __future__ import annotations

import argparse
import contextlib
import mimetypes
import subprocess
import sys
import tempfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

DEMO_HOST = "modeflow-demo.invalid"


class _ProxyHandler(BaseHTTPRequestHandler):
    root: Path  # set on the subclass made by make_server

    def do_GET(self):  # noqa: N802 (http.server's naming)
        target = urlsplit(self.path)
        # Absolute-url targets come through the proxy; a relative one (a direct request) is served too.
        if target.hostname not in (None, DEMO_HOST):
            self.send_error(HTTPStatus.BAD_GATEWAY, f"this proxy only serves {DEMO_HOST}")
            return
        # The url path below the host is relative to the root ("/images/x.png" → root/images/x.png).
        # resolve() + the containment check stop "/../" from reading outside the root.
        file = (self.root / unquote(target.path).lstrip("/")).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body = file.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", mimetypes.guess_type(file.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass  # one line per image would drown the job log


def make_server(root, port: int = 0) -> ThreadingHTTPServer:
    handler = type("Handler", (_ProxyHandler,), {"root": Path(root).resolve()})
    # img2dataset opens up to thread_count connections at once (urllib: one per request); the
    # socketserver default backlog of 5 makes the excess wait for SYN retransmits (1 s and up).
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 1024})
    return server_class(("127.0.0.1", port), handler)


@contextlib.contextmanager
def serve_demo(root, *, timeout: float = 30.0) -> Iterator[str]:
    """Run the proxy over `root` in a child process; yield its url (`http://127.0.0.1:PORT`).

    The child is stopped by its pid on exit, error or not: terminate, wait, then kill.
    """
    if not Path(root).is_dir():
        raise FileNotFoundError(f"demo image root is not a directory: {root}")
    # stderr goes to a file, not a pipe: nobody reads a pipe while serving, and a full one (tracebacks
    # of clients that hung up) would block the server's threads.
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modeflow.demo.httpserver", "--root", str(root), "--port", "0"],
            stdout=subprocess.PIPE, stderr=errors, text=True,
        )
        try:
            line = proc.stdout.readline().strip()
            if not line.isdigit():
                proc.wait(timeout)
                errors.seek(0)
                raise RuntimeError(f"demo server did not start: {line!r} {errors.read()[-2000:]}")
            yield f"http://127.0.0.1:{line}"
        finally:
            _stop(proc, timeout)


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=f"Serve DIR as an HTTP proxy for http://{DEMO_HOST}/")
    parser.add_argument("--root", required=True, help="directory whose files the demo urls name")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    args = parser.parse_args(argv)
    server = make_server(args.root, args.port)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
