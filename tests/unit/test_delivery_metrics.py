"""Delivery metrics: each count goes to the total and, as its own EMF record, to the message's kind."""

from __future__ import annotations

import json

from expensebot.delivery import count
from expensebot.observability import METRICS_NAMESPACE, metrics


def test_a_count_is_published_per_message_kind_as_well_as_in_total(monkeypatch, capsys):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    metrics.clear_metrics()

    count("RetriedAfter429", "monthly_report")

    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert directive["Dimensions"] == [["kind"]]
    assert directive["Metrics"] == [{"Name": "RetriedAfter429", "Unit": "Count"}]
    assert (line["kind"], line["RetriedAfter429"]) == ("monthly_report", [1.0])
    # The total, without the kind, waits in the invocation's metric set for the handler's flush.
    assert metrics.metric_set["RetriedAfter429"]["Value"] == [1.0]
    metrics.clear_metrics()


def test_no_per_kind_record_is_printed_when_metrics_are_disabled(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    count("MessagesSent", "budget_alert")
    assert capsys.readouterr().out == ""
    metrics.clear_metrics()
