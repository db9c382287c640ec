"""The pacing benchmark at a tiny size: the delaying proxy really delays, and one cell runs old and new end
to end through it and leaves the JSON line the issue asks for. Correctness only: the speed goal is measured
by `make bench BENCH=pacing`, never here."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

from rich.console import Console

from expensebot_tools.bench import BenchOptions, run_benchmarks
from expensebot_tools.bench.delay_proxy import DelayProxy


def _echo_server() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def echo() -> None:
        client, _ = server.accept()
        with client:
            while data := client.recv(100):
                client.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    return server


def test_the_proxy_adds_the_round_trip_time_to_every_exchange():
    server = _echo_server()
    with server, DelayProxy(server.getsockname(), rtt_ms=2.0) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with client:
            round_trips = []
            for number in range(20):
                began = time.perf_counter()
                client.sendall(b"ping %d" % number)
                assert client.recv(100) == b"ping %d" % number  # every byte through, in order
                round_trips.append(time.perf_counter() - began)
    assert min(round_trips) >= 0.002


def test_one_tiny_cell_runs_old_and_new_and_records_each_row(tmp_path):
    results = tmp_path / "results.jsonl"
    out = io.StringIO()
    # Over 1.05 s: the round of private chats starts over, so chats get a second slot to check.
    options = BenchOptions(pacing_workers=(2,), pacing_rtt_ms=(0.5,), pacing_seconds=1.3, results_path=results)

    run_benchmarks(["pacing"], options, console=Console(file=out, width=200))

    (line,) = [json.loads(text) for text in results.read_text(encoding="utf-8").splitlines()]
    assert line["name"] == "pacing"
    assert line["spacing_ok"] is True and line["held_back"] == 0 and line["errors"] == 0
    rows = line["rows"]
    assert sorted((row["operation"], row["implementation"]) for row in rows) == [
        ("claim_and_reserve", "new"), ("claim_and_reserve", "old"), ("reserve", "new"), ("reserve", "old")]
    for row in rows:
        assert row["workers"] == 2 and row["rtt_ms"] == 0.5
        assert row["reservations_per_second"] > 0 and row["reservations"] > 0
        assert row["spacing_ok"] is True
        assert row["private_chats_checked"] > 0 and row["smallest_private_chat_gap_s"] >= 1.0 - 1e-6
        assert row["smallest_bot_gap_ms"] >= 1000 / (1000 * 0.95) - 0.001  # paid broadcasts, 5 % under
        assert row["rtt_measured_ms"] >= 0.5  # the delay is really there
        assert row["latency_p50_ms"] >= 0.5
    printed = out.getvalue()
    assert "old vs new" in printed and "Goal: at 0.5 ms RTT and 16 workers" in printed
