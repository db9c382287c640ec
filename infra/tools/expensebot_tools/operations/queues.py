"""`expensebot ops queues`, `ops queues pause|resume QUEUE` and `ops purge`: the seed's `LLEN`, Celery's
`cancel_consumer` / `add_consumer` and `celery purge`, against SQS and Lambda's event source mappings.

- `queues`: every queue of the template (the five task queues, their DLQs, and the jobs' two DLQs,
  JobFailureQueue and SchedulerDeadLetterQueue) with SQS's approximate counts, and for a task queue whether
  its worker's event source mapping is Enabled or Disabled (paused), where the deployment names the mapping.
  Exit 2 when no queue is configured at all. The age of the oldest message is CloudWatch's
  ApproximateAgeOfOldestMessage, not a queue attribute; peeking would count as a receive, so it is left to
  the dashboard.
- `queues pause QUEUE` / `queues resume QUEUE`: UpdateEventSourceMapping(Enabled=False/True) on the mapping
  of the queue's worker (the pairing is read from template.yaml). A paused queue keeps its messages: they
  wait (up to the queue's retention, 4 days) and are consumed once resumed; nothing moves them to the DLQ,
  since nothing receives them.
- `purge QUEUE [--dlq] [--yes]`: empties a queue, or its DLQ, after a confirmation.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from expensebot_tools.console import CliError, opened_runtime, print_json, print_table
from expensebot_tools.operations.deployment import (
    JOB_DEAD_LETTER_VARIABLES,
    STACK_VARIABLE,
    Deployment,
    QueueRef,
    queue_names_help,
    queue_refs,
    worker_of,
)

_DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass
class Operations:
    """What the queue and DLQ commands share: the deployment's map, the library's runtime (settings, SQS
    client), and a Lambda client made on first use."""

    deployment: Deployment
    runtime: Any
    _lambda: Any = None

    @property
    def sqs(self) -> Any:
        return self.runtime.queues.client

    @property
    def lambda_client(self) -> Any:
        if self._lambda is None:
            import boto3

            self._lambda = boto3.client("lambda")
        return self._lambda

    def find(self, text: str) -> QueueRef:
        return self.deployment.find_queue(text)

    def url(self, ref: QueueRef) -> str:
        """The queue's URL: from the deployment, else from the functions' variables, a task queue's DLQ
        through the queue's redrive policy; a CliError naming what to set when none says."""
        found = self.url_or_none(ref)
        if found is None:
            variable = JOB_DEAD_LETTER_VARIABLES.get(ref.logical_id) or (
                f"QUEUE_URL_{ref.task_queue.upper()}" if ref.task_queue else "")
            raise CliError(f"{ref.logical_id}: no URL known from {self.deployment.source}: source "
                           f".expensebot/local.env (local up), set {STACK_VARIABLE}, or set {variable}")
        return found

    def url_or_none(self, ref: QueueRef) -> str | None:
        if url := self.deployment.lookup(ref.logical_id):
            return url
        if not ref.task_queue:
            return None
        source = self.deployment.lookup(ref.source_logical_id or "") or self.runtime.settings.queue_url(ref.task_queue)
        if not source or not ref.is_dead_letter:
            return source or None
        configured = self.runtime.settings.dead_letter_queue_url(ref.task_queue)
        return configured or str(self.runtime.queues.dead_letter_url(source))

    def count(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def mapping(self, ref: QueueRef) -> tuple[str, str, str | None]:
        """(worker function, mapping logical id, mapping UUID or None) of a task queue."""
        if ref.is_dead_letter or not ref.task_queue:
            raise CliError(f"{ref.label} has no consumer: only the five task queues ({queue_names_help()}) have")
        function_id, mapping_id = worker_of(ref.logical_id)
        return function_id, mapping_id, self.deployment.lookup(mapping_id)


@contextmanager
def operations() -> Iterator[Operations]:
    """The deployment and the runtime for one command."""
    deployment = Deployment.from_environment()
    with opened_runtime() as runtime:
        yield Operations(deployment, runtime)


# --- ops queues ------------------------------------------------------------------------------------------


def queue_rows(ops: Operations) -> list[dict[str, Any]]:
    rows = []
    for ref in queue_refs():
        row: dict[str, Any] = {"queue": ref.label, "logical_id": ref.logical_id,
                               "kind": "dead-letter" if ref.is_dead_letter else "tasks"}
        try:
            url = ops.url_or_none(ref)
        except Exception as exc:  # a DLQ whose redrive policy cannot be read is reported on its row
            row["problem"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row["url"] = url
        if not url:
            variable = JOB_DEAD_LETTER_VARIABLES.get(ref.logical_id) or f"QUEUE_URL_{(ref.task_queue or '').upper()}"
            row["problem"] = f"no URL configured ({variable})"
            rows.append(row)
            continue
        try:
            counts = ops.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_DEPTH_ATTRIBUTES)["Attributes"]
        except Exception as exc:  # a missing queue is reported on its row, not as a crash
            row["problem"] = f"{type(exc).__name__}: {exc}"
        else:
            row.update(waiting=int(counts.get("ApproximateNumberOfMessages", 0)),
                       in_flight=int(counts.get("ApproximateNumberOfMessagesNotVisible", 0)),
                       delayed=int(counts.get("ApproximateNumberOfMessagesDelayed", 0)))
        if not ref.is_dead_letter:
            row["consumer"] = consumer_state(ops, ref)
        rows.append(row)
    for row in rows:  # each task queue's row also shows its DLQ's depth (what `ops status` and doctor read)
        if row["kind"] == "tasks":
            dead = next((r for r in rows if r["logical_id"] == QueueRef(row["logical_id"], row["queue"])
                         .dead_letter_logical_id), {})
            row["dead_letter"] = dead.get("waiting")
    return rows


def consumer_state(ops: Operations, ref: QueueRef) -> str | None:
    """Enabled / Disabled (paused) / Enabling / Disabling of the queue's worker mapping; None where the
    deployment does not name the mapping (QUEUE_URL_* only)."""
    _, _, uuid = ops.mapping(ref)
    if not uuid:
        return None
    try:
        return str(ops.lambda_client.get_event_source_mapping(UUID=uuid)["State"])
    except Exception as exc:  # unreadable (permissions, deleted): said on the row
        return f"unknown ({type(exc).__name__})"


def print_queues(rows: list[dict[str, Any]]) -> None:
    def consumer(row: dict[str, Any]) -> str:
        state = row.get("consumer")
        if row["kind"] != "tasks":
            return ""
        if state is None:
            return "(not known)"
        return f"{state} (paused)" if state == "Disabled" else state

    print_table(
        "Queues (SQS's approximate counts; consumer: the worker's event source mapping)",
        ["queue", "kind", "waiting", "in flight", "delayed", "DLQ", "consumer", "problem"],
        [[r["queue"], r["kind"], r.get("waiting", ""), r.get("in_flight", ""), r.get("delayed", ""),
          r.get("dead_letter", ""), consumer(r), r.get("problem", "")] for r in rows],
    )


def cmd_queues(args: argparse.Namespace) -> int:
    with operations() as ops:
        rows = queue_rows(ops)
    if all(not r.get("url") for r in rows):
        raise CliError("no queue is configured: source .expensebot/local.env (local up), set "
                       f"{STACK_VARIABLE} to the stack's name, or set QUEUE_URL_* (the stack's outputs)")
    if args.json:
        print_json(rows)
    else:
        print_queues(rows)
    return 0


def _set_consumer(args: argparse.Namespace, *, enabled: bool) -> int:
    from botocore.exceptions import ClientError

    with operations() as ops:
        ref = ops.find(args.queue)
        function_id, mapping_id, uuid = ops.mapping(ref)
        if not uuid:
            raise CliError(f"{mapping_id} (the event source mapping of {function_id}) is not known from "
                           f"{ops.deployment.source}: set {STACK_VARIABLE}, or source .expensebot/local.env")
        try:
            state = ops.lambda_client.update_event_source_mapping(UUID=uuid, Enabled=enabled)["State"]
        except ClientError as exc:
            raise CliError(f"UpdateEventSourceMapping {uuid}: {exc.response['Error'].get('Message', exc)}") from None
    if enabled:
        print(f"{ref.label}: resumed: {function_id} consumes it again (mapping {uuid}: {state}); "
              "the messages that waited are processed now")
    else:
        print(f"{ref.label}: paused: {function_id} no longer consumes it (mapping {uuid}: {state}); new and "
              f"waiting messages stay in the queue, nothing is lost; `expensebot ops queues resume {ref.label}`")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    return _set_consumer(args, enabled=False)


def cmd_resume(args: argparse.Namespace) -> int:
    return _set_consumer(args, enabled=True)


# --- ops purge -------------------------------------------------------------------------------------------


def confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
    except EOFError:
        return False


def cmd_purge(args: argparse.Namespace) -> int:
    with operations() as ops:
        ref = ops.find(args.queue)
        if args.dlq:
            if not ref.task_queue:
                raise CliError(f"{ref.label} is a DLQ itself: `ops purge {ref.label}` without --dlq")
            ref = QueueRef(ref.dead_letter_logical_id, ref.task_queue)
        url = ops.url(ref)
        what = f"the {ref.task_queue!r} queue's DLQ" if ref.is_dead_letter and ref.task_queue else (
            f"the {ref.label!r} queue")
        count = ops.count(url)
        if not args.yes and not confirm(f"Delete every message (about {count}) in {what}?"):
            print("nothing purged")
            return 1
        ops.sqs.purge_queue(QueueUrl=url)
    print(f"purged {what} ({url}); it had about {count} message(s); SQS takes up to 60 s to finish")
    return 0


# --- the parser ------------------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    queues = sub.add_parser("queues", help="every queue and DLQ: waiting, in flight, delayed; consumers paused")
    queues.add_argument("--json", action="store_true", help="print the rows as JSON")
    queues.set_defaults(func=cmd_queues)
    actions = queues.add_subparsers(dest="queues_command")
    pause = actions.add_parser("pause", help="stop the queue's worker consuming it (messages wait)")
    pause.add_argument("queue", help=f"the task queue: {queue_names_help()}")
    pause.set_defaults(func=cmd_pause)
    resume = actions.add_parser("resume", help="let the queue's worker consume it again")
    resume.add_argument("queue", help=f"the task queue: {queue_names_help()}")
    resume.set_defaults(func=cmd_resume)

    purge = sub.add_parser("purge", help="delete every message in a queue (or its DLQ)")
    purge.add_argument("queue", help=f"the queue: {queue_names_help()}")
    purge.add_argument("--dlq", action="store_true", help="purge the queue's DLQ instead")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=cmd_purge)
