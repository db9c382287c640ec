"""A TCP proxy that adds a round-trip time: what a network between Lambda and PostgreSQL costs each statement.

This kernel has no sch_netem (`tc qdisc add dev lo root netem` answers "Specified qdisc kind is unknown", and
no other qdisc here delays packets), so the delay is added in user space: every chunk read from either side is
written to the other side RTT/2 later. The delay is the same for every chunk, so one FIFO of (due, socket,
bytes) in arrival order is also in due order, and each direction keeps its byte order.

Sub-millisecond delays rule out asyncio and epoll, whose timeouts are whole milliseconds: the loop is a single
`select.select` (microsecond timeouts) in a process of its own, with the kernel's timer slack (50 µs by
default, added to every sleep) lowered to 1 ns."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import select
import signal
import socket
import time
from collections import deque
from types import TracebackType
from typing import Any

PR_SET_TIMERSLACK = 29
CHUNK = 65536


def _lower_timer_slack() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _serve(listener: socket.socket, upstream: tuple[str, int], half_rtt: float) -> None:
    """The proxy's loop; runs until the process is terminated."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _lower_timer_slack()
    peers: dict[socket.socket, socket.socket] = {}
    # (due, destination, bytes); empty bytes: the source closed, close the destination then.
    pending: deque[tuple[float, socket.socket, bytes]] = deque()
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        readable, _, _ = select.select([listener, *peers], [], [], timeout)
        now = time.monotonic()
        for sock in readable:
            if sock is listener:
                client, _ = listener.accept()
                server = socket.create_connection(upstream)
                for end in (client, server):
                    end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                peers[client], peers[server] = server, client
                continue
            if sock not in peers:
                continue  # closed earlier in this round
            try:
                data = sock.recv(CHUNK)
            except OSError:
                data = b""
            pending.append((now + half_rtt, peers[sock], data))
            if not data:
                del peers[sock]  # no more reads from it; the peer closes when the EOF is due
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, destination, data = pending.popleft()
            if data:
                with contextlib.suppress(OSError):
                    destination.sendall(data)
                continue
            peer = peers.pop(destination, None)
            for end in (destination, peer):
                if end is not None:
                    with contextlib.suppress(KeyError):
                        del peers[end]
                    end.close()


class DelayProxy:
    """127.0.0.1:<port> → upstream, each direction delayed by rtt_ms / 2, in a forked process of its own.

    with DelayProxy(("127.0.0.1", 5432), rtt_ms=0.5) as proxy: connect to proxy.port."""

    def __init__(self, upstream: tuple[str, int], rtt_ms: float) -> None:
        self.upstream = upstream
        self.rtt_ms = rtt_ms
        self._listener: socket.socket | None = None
        self._process: Any = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        return int(self._listener.getsockname()[1])

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def start(self) -> DelayProxy:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        # fork: the child gets the listening socket as it is, and needs nothing imported anew.
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(self._listener, self.upstream, self.rtt_ms / 2000), daemon=True,
            name=f"delay-proxy-{self.rtt_ms}ms",
        )
        self._process.start()
        return self

    def cpu_seconds(self) -> float:
        """The proxy process's CPU time so far (user + system): it shares the machine's cores with what it
        measures."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of the line; the split starts at field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join(timeout=10)
            self._process = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
