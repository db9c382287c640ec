"""The benchmark harness: the registry, the record every benchmark leaves, and the data set's rules.
These are correctness tests; no figure is timed here (speed goals live in `make bench`)."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest
from rich.console import Console

from expensebot_tools import bench
from expensebot_tools.bench import benchmark, record, registry
from expensebot_tools.bench.dataset import DatasetSpec, due_dates
from expensebot_tools.cli import main


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=150), out


def test_record_prints_the_figures_and_appends_one_json_line_per_call(tmp_path):
    console, out = _console()
    results = tmp_path / "results.jsonl"
    record("demo", {"set_based_seconds": 0.1234, "ratio": 61.5, "goal_50x": True, "rows": [1, 2]},
           console=console, results_path=results, note="ratio = naive / set-based")
    record("demo", {"ratio": 12.0}, console=console, results_path=results)

    lines = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["name"] == "demo"
    assert first["set_based_seconds"] == 0.1234 and first["ratio"] == 61.5 and first["goal_50x"] is True
    assert first["rows"] == [1, 2]  # nested detail goes to the JSON line
    assert first["timestamp"].endswith("+00:00")
    assert first["machine"]["cpus"] >= 1 and first["machine"]["python"]
    printed = out.getvalue()
    assert "benchmark: demo" in printed
    assert "set_based_seconds" in printed and "0.123" in printed and "61.50" in printed and "yes" in printed
    assert "ratio = naive / set-based" in printed
    assert "│ rows" not in printed  # a list is no table row


def test_record_refuses_figures_named_like_the_record_itself(tmp_path):
    console, _ = _console()
    with pytest.raises(ValueError, match="reserved"):
        record("demo", {"timestamp": 1}, console=console, results_path=tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_the_registry_holds_every_benchmark_in_run_order_with_descriptions():
    benchmarks = registry()
    assert list(benchmarks)[:6] == ["budget_check", "planners", "bot", "report_render", "cleanup", "broadcast"]
    # The broadcasts and the pacing benchmark build their own system and the parsing benchmark needs none:
    # none of them builds the data set.
    assert [name for name, b in benchmarks.items() if not b.needs_dataset] == [
        "broadcast", "broadcast_paid", "report_batch", "pacing", "parsing"]
    assert all(b.description for b in benchmarks.values())


def test_a_name_registered_twice_for_different_functions_is_an_error():
    @benchmark("test_only_benchmark")
    def first(ctx):
        """first"""

    try:
        with pytest.raises(ValueError, match="registered twice"):
            @benchmark("test_only_benchmark")
            def second(ctx):
                """second"""
    finally:
        bench._REGISTRY.pop("test_only_benchmark", None)


def test_bench_list_names_every_benchmark(capsys):
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("budget_check", "planners", "cleanup"):
        assert name in listed


def test_an_unknown_benchmark_is_refused_with_the_known_names():
    with pytest.raises(SystemExit, match=r"unknown benchmark.*budget_check"):
        bench.run_benchmarks(["no_such_bench"], bench.BenchOptions(), Console(file=io.StringIO()))


def test_a_data_set_too_small_for_its_users_says_what_it_needs():
    with pytest.raises(ValueError, match="at least 10 expenses per user"):
        DatasetSpec(users=100, expenses=500).check()
    with pytest.raises(ValueError, match="at least 10 users"):
        DatasetSpec(users=3, expenses=500).check()


def test_recurring_bookings_fall_on_the_last_day_of_shorter_months():
    dates = list(due_dates(31, date(2024, 1, 15), date(2024, 4, 30)))
    assert dates == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]
    # Created after its day of the month: the first due date is next month's.
    assert list(due_dates(10, date(2025, 3, 20), date(2025, 5, 9))) == [date(2025, 4, 10)]
