"""The stand-in's HTTP plumbing: a threading HTTP server and its request handler.

It reads requests (keep-alive, chunked bodies), hands the path, content type and
body to the stand-in's request handling, and writes the JSON answer back. It also
tracks open connections and worker threads so that ``TelegramStandIn.stop()``
can end promptly. It knows nothing of the Bot API's methods.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from expensebot_tools.local.telegram.errors import bad_request

# (request path with query, Content-Type, body) -> (HTTP status, JSON payload).
RequestHandler = Callable[[str, str, bytes], tuple[int, dict[str, Any]]]


class Server(ThreadingHTTPServer):
    # Handler threads are daemons so a forgotten stop() never blocks interpreter
    # exit; socketserver does not track daemon threads, so stop() joins them
    # itself (see join_workers) after unblocking them.
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog of 5 resets connections when a
    # simulation fans out dozens of concurrent sends.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handle: RequestHandler, errors: list[BaseException]) -> None:
        # The stand-in's request handling and its list of unexpected errors; passed in rather than the
        # stand-in itself so that this module needs nothing from the one that builds the server.
        self.handle = handle
        self.errors = errors
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered before the thread starts, so stop() can never miss a
        # connection and then wait on an idle keep-alive read.
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="telegram-standin-request",
            daemon=True,
        )
        with self._open_lock:
            self._open.add(request)
            self._workers = [thread for thread in self._workers if thread.is_alive()]
            self._workers.append(worker)
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._open_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out (timeout injection) close early; the late write
        # fails and that is expected. Anything else is kept for inspection
        # instead of being printed, as the stand-in must stay quiet.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive matters: aiohttp and urllib3 pool connections, and the local
    # simulation sends thousands of messages.
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add
    # ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Drain optional trailers up to the blank line.
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            status, payload = 400, bad_request("invalid request body").payload()
            self.close_connection = True
        else:
            status, payload = self.server.handle(self.path, self.headers.get("Content-Type", ""), body)
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
