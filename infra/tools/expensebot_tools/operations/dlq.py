"""`expensebot ops dlq`: Flower's failed-task page and its retry button, for the seven dead-letter queues:
the five task queues' DLQs, JobFailureQueue (Lambda's on-failure records of the scheduled jobs) and
SchedulerDeadLetterQueue (Scheduler's deliveries that never reached a job function). A DLQ is named by its
queue (`notifications`), its logical id (`NotificationsDeadLetterQueue`, `JobFailureQueue`) or its SQS name.

- `show QUEUE [--id ID…] [--max N]`: each message's id, task and arguments (a job DLQ: job, slot and
  attempts), error, receive count and first failure time. Peeking receives the messages and makes them
  visible again at once (nothing consumed; a DLQ has no redrive policy, so a receive moves nothing on).
- `retry QUEUE ID…`: a task message is re-sent to its queue, then deleted from the DLQ (re-sent first: a stop
  in between leaves a duplicate, which the idempotent task absorbs, never a loss); a job record re-runs that
  job for that slot (the job function invoked asynchronously with the original event where the deployment
  names it, else in-process as `ops run JOB --slot` runs it), then is deleted.
- `drop QUEUE ID… [--yes]`: deletes those messages after a confirmation.
- `redrive QUEUE [--task NAME] [--error TEXT] [--method auto|move|copy]`: moves a task DLQ's messages back to
  their queue: SQS's StartMessageMoveTask (`move`), or receive → re-send → only then delete (`copy`), which
  loses nothing if it stops half way. With a filter only the matching messages move (always by copy).
An ID is the SQS MessageId `show` prints; finding one means receiving until it is seen, then making the
others visible again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from expensebot_tools.console import CliError, ProblemFound, print_json, print_table
from expensebot_tools.operations.deployment import (
    JOB_FAILURE_QUEUE,
    SCHEDULER_DEAD_LETTER_QUEUE,
    QueueRef,
    job_function,
    queue_names_help,
)
from expensebot_tools.operations.queues import Operations, confirm, operations
from expensebot_tools.project.aws_records import parse_async_failure_record, parse_scheduler_dead_letter

RECEIVE_BATCH = 10
# How long a message peeked by `dlq show`, or taken by a retry or a `copy` redrive, stays hidden if this
# command dies: short, so an interrupted command leaves the messages where they were a minute later.
PEEK_VISIBILITY_SECONDS = 60
NO_ERROR_TEXT = "(failed too often: see the worker's logs)"


# --- receiving without consuming -------------------------------------------------------------------------


def _receive(client: Any, url: str, *, visibility: int, limit: int, wait: int = 0) -> list[dict[str, Any]]:
    return list(client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=max(1, min(RECEIVE_BATCH, limit)), VisibilityTimeout=visibility,
        WaitTimeSeconds=wait, AttributeNames=["All"], MessageAttributeNames=["All"],
    ).get("Messages", []))


def release(client: Any, url: str, messages: Iterable[dict[str, Any]]) -> None:
    """Makes received messages visible again at once."""
    pending = list(messages)
    for start in range(0, len(pending), RECEIVE_BATCH):
        chunk = pending[start : start + RECEIVE_BATCH]
        client.change_message_visibility_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                                   for i, m in enumerate(chunk)])


def peek_messages(client: Any, url: str, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages, each made visible again before returning (none is consumed)."""
    seen: dict[str, dict[str, Any]] = {}
    received: list[dict[str, Any]] = []
    try:
        while len(seen) < limit:
            batch = _receive(client, url, visibility=PEEK_VISIBILITY_SECONDS, limit=limit - len(seen))
            if not batch:
                break
            received.extend(batch)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update((m["MessageId"], m) for m in fresh)
    finally:
        release(client, url, received)
    return list(seen.values())


def take_messages(client: Any, url: str, ids: Iterable[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Receives until every wanted message is seen (or the queue has no more), makes every other one visible
    again, and returns the wanted ones (hidden for PEEK_VISIBILITY_SECONDS: the caller deletes or releases
    them) with the ids not found. Short polling samples only some of SQS's servers, so an empty answer is
    asked once more with a one-second long poll (which asks them all) before giving up."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, dict[str, Any]] = {}
    others: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        while len(found) < len(wanted):
            batch = _receive(client, url, visibility=PEEK_VISIBILITY_SECONDS, limit=RECEIVE_BATCH)
            if not batch:
                batch = _receive(client, url, visibility=PEEK_VISIBILITY_SECONDS, limit=RECEIVE_BATCH, wait=1)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            others.extend(m for m in batch if m["MessageId"] not in wanted or m["MessageId"] in found)
            for message in fresh:
                seen.add(message["MessageId"])
                if message["MessageId"] in wanted:
                    found[message["MessageId"]] = message
            if not fresh:
                break
    except BaseException:
        release(client, url, [*others, *found.values()])
        raise
    release(client, url, others)
    return found, [i for i in wanted if i not in found]


# --- what a message says ---------------------------------------------------------------------------------


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = (message.get("MessageAttributes") or {}).get(name)
    return str(value.get("StringValue")) if value else None


def _millis(message: dict[str, Any], name: str) -> datetime | None:
    value = (message.get("Attributes") or {}).get(name)
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


def _invocation(payload: Any) -> Any:
    from pydantic import ValidationError

    from expensebot.scheduling import ScheduledInvocation

    try:
        return ScheduledInvocation.model_validate(payload)
    except ValidationError:
        return None


def describe(message: dict[str, Any], ref: QueueRef, tz: Any) -> dict[str, Any]:
    """One DLQ message as an operator reads it."""
    row: dict[str, Any] = {
        "message_id": message["MessageId"],
        "receive_count": int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 0)),
        "body": message["Body"],
    }
    first_failure: datetime | None
    if ref.logical_id == JOB_FAILURE_QUEUE:
        record = parse_async_failure_record(message["Body"])
        payload = record.request_payload if record else None
        row.update(kind="job failure", error=record.error if record else "not a Lambda invocation record",
                   attempts=record.request_context.approximate_invoke_count if record else None,
                   function=record.function_name if record else None)
        first_failure = record.timestamp if record else _millis(message, "SentTimestamp")
    elif ref.logical_id == SCHEDULER_DEAD_LETTER_QUEUE:
        letter = parse_scheduler_dead_letter(message)
        payload = letter.payload if letter else _json(message["Body"])
        row.update(kind="scheduler delivery", error=letter.error if letter else "no Scheduler attributes",
                   # RETRY_ATTEMPTS counts the retries; the first delivery comes on top.
                   attempts=letter.retry_attempts + 1 if letter else None,
                   schedule=letter.schedule_name if letter else None)
        first_failure = _millis(message, "SentTimestamp")
    else:
        body = _json(message["Body"])
        body = body if isinstance(body, dict) else {}
        error = _attribute(message, "error")
        row.update(kind="task", task=_attribute(message, "task") or body.get("task"), arguments=body.get("args"),
                   task_id=body.get("id"), error=error or NO_ERROR_TEXT)
        # A message the worker parked was sent to the DLQ when it failed; one SQS moved there after too many
        # receives keeps its first receive, the first attempt that failed.
        first_failure = _millis(message, "SentTimestamp") if error else (
            _millis(message, "ApproximateFirstReceiveTimestamp") or _millis(message, "SentTimestamp"))
        payload = None
    if ref.holds_jobs:
        invocation = _invocation(payload)
        row.update(job=invocation.job if invocation else None,
                   slot=invocation.scheduled_time.astimezone(tz).isoformat() if invocation else None,
                   event=payload)
    row["first_failure"] = first_failure.astimezone(tz).isoformat(timespec="seconds") if first_failure else None
    return row


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def print_rows(title: str, rows: list[dict[str, Any]], ref: QueueRef) -> None:
    if ref.holds_jobs:
        print_table(title, ["message id", "job", "slot", "attempts", "error", "receives", "first failure"],
                    [[r["message_id"], r.get("job") or "", r.get("slot") or "", r.get("attempts") or "",
                      r["error"], r["receive_count"], r["first_failure"] or ""] for r in rows])
        return
    print_table(title, ["message id", "task", "arguments", "error", "receives", "first failure"],
                [[r["message_id"], r.get("task") or "", json.dumps(r.get("arguments"), ensure_ascii=False)[:200],
                  r["error"], r["receive_count"], r["first_failure"] or ""] for r in rows])


# --- the commands ----------------------------------------------------------------------------------------


def _dead_letter(ops: Operations, text: str) -> tuple[QueueRef, str]:
    ref = ops.find(text)
    dlq = QueueRef(ref.dead_letter_logical_id, ref.task_queue)
    return dlq, ops.url(dlq)


def _taken(ops: Operations, url: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    found, missing = take_messages(ops.sqs, url, ids)
    if missing:
        release(ops.sqs, url, found.values())
        raise CliError(f"not in the DLQ (already retried, dropped, or a typo?): {', '.join(missing)}; "
                       "`expensebot ops dlq show` lists the message ids; nothing was done")
    return found


def cmd_dlq_show(args: argparse.Namespace) -> int:
    with operations() as ops:
        ref, url = _dead_letter(ops, args.queue)
        if args.id:
            found = _taken(ops, url, args.id)
            release(ops.sqs, url, found.values())
            messages = list(found.values())
        else:
            messages = peek_messages(ops.sqs, url, limit=args.max)
        rows = [describe(m, ref, ops.runtime.settings.tz) for m in messages]
    if args.json:
        print_json(rows)
        return 0
    print_rows(f"{ref.label}: {len(rows)} message(s) shown (none consumed)", rows, ref)
    return 0


def _rerun_job(ops: Operations, event: Any) -> str:
    """Runs the job of a failed delivery again for its slot; returns what was done (raises on failure)."""
    from expensebot.scheduling import run_scheduled_job

    invocation = _invocation(event)
    if invocation is None:
        raise CliError(f"not a job event (no job and scheduled_time): {json.dumps(event)[:200]}")
    function_id = job_function(invocation.job)
    what = f"{invocation.job} for {invocation.scheduled_time.astimezone(ops.runtime.settings.tz).isoformat()}"
    if function_id and ops.deployment.knows(function_id):
        name = ops.deployment.function_name(function_id)
        # Asynchronously, as Scheduler invokes it: Lambda's retries and on-failure record apply again.
        ops.lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode())
        return f"{what}: invoked {name} (asynchronously)"
    outcome = run_scheduled_job(invocation, runtime=ops.runtime)
    if outcome.status == "duplicate":
        return f"{what}: already succeeded (or is running)"
    return f"{what}: {outcome.status}, run {outcome.run_id}"


def retry_message(ops: Operations, ref: QueueRef, url: str, message: dict[str, Any]) -> str:
    """Re-sends a task message to its queue, or re-runs a job record's slot, then deletes it from the DLQ."""
    if ref.holds_jobs:
        row = describe(message, ref, ops.runtime.settings.tz)
        done = _rerun_job(ops, row.get("event"))
    else:
        queue_url = ops.url(QueueRef(ref.source_logical_id or "", ref.task_queue))
        entry: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
        # The reason stays behind: a retried message is a fresh attempt.
        attributes = {k: v for k, v in (message.get("MessageAttributes") or {}).items() if k != "error"}
        if attributes:
            entry["MessageAttributes"] = attributes
        sent = ops.sqs.send_message(**entry)
        done = f"re-sent to {ref.task_queue!r} as {sent['MessageId']}"
    ops.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return done


def cmd_dlq_retry(args: argparse.Namespace) -> int:
    failed = []
    with operations() as ops:
        ref, url = _dead_letter(ops, args.queue)
        found = _taken(ops, url, args.id)
        not_done = dict(found)
        try:
            for message_id, message in found.items():
                try:
                    done = retry_message(ops, ref, url, message)
                except Exception as exc:  # one failure (the job raised again) leaves the others to go on
                    failed.append(f"{message_id}: {type(exc).__name__}: {exc}")
                    continue
                del not_done[message_id]
                print(f"{message_id}: {done}; deleted from {ref.label}")
        finally:
            # Failed, or stopped half way: what was not retried is visible in the DLQ again at once.
            release(ops.sqs, url, not_done.values())
    if failed:
        raise ProblemFound(f"{len(failed)} of {len(found)} not retried (still in {ref.label}): {'; '.join(failed)}")
    return 0


def cmd_dlq_drop(args: argparse.Namespace) -> int:
    with operations() as ops:
        ref, url = _dead_letter(ops, args.queue)
        found = _taken(ops, url, args.id)
        if not args.yes and not confirm(f"Delete {len(found)} message(s) from {ref.label} for good?"):
            release(ops.sqs, url, found.values())
            print("nothing dropped")
            return 1
        for message_id, message in found.items():
            ops.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            print(f"{message_id}: dropped from {ref.label}")
    return 0


def message_filter(task: str | None, error: str | None, ref: QueueRef, tz: Any) -> Callable[[dict[str, Any]], bool]:
    """Does a DLQ message match --task (its task's name, several comma-separated) and --error (a piece of its
    error, any case)?"""
    tasks = {t.strip() for t in task.split(",")} if task else None

    def matches(message: dict[str, Any]) -> bool:
        row = describe(message, ref, tz)
        if tasks is not None and row.get("task") not in tasks:
            return False
        return not error or error.lower() in str(row.get("error") or "").lower()

    return matches


def redrive_by_copy(client: Any, dead_letter_url: str, queue_url: str, *, limit: int | None = None,
                    matches: Callable[[dict[str, Any]], bool] | None = None) -> int:
    """Receive from the DLQ, re-send to the queue, and only then delete from the DLQ what was re-sent.
    Stops at the count the DLQ held when it began, so a message failing again during the redrive is not
    redriven twice in one call. With `matches`, a message it refuses is left in the DLQ (visible again when
    the redrive ends). Returns how many messages moved."""
    if limit is None:
        limit = int(client.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
    moved = 0
    seen: set[str] = set()
    kept: list[dict[str, Any]] = []
    try:
        while len(seen) < limit:
            batch = _receive(client, dead_letter_url, visibility=PEEK_VISIBILITY_SECONDS, limit=limit - len(seen))
            fresh = [m for m in batch if m["MessageId"] not in seen]
            kept.extend(m for m in batch if m["MessageId"] in seen)
            if not fresh:
                break
            seen.update(m["MessageId"] for m in fresh)
            chosen = [m for m in fresh if matches is None or matches(m)]
            kept.extend(m for m in fresh if m not in chosen)
            if not chosen:
                continue
            entries = []
            for i, message in enumerate(chosen):
                entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
                attributes = {k: v for k, v in (message.get("MessageAttributes") or {}).items() if k != "error"}
                if attributes:
                    entry["MessageAttributes"] = attributes
                entries.append(entry)
            sent = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            resent = {ok["Id"] for ok in sent.get("Successful", [])}
            done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chosen)
                    if str(i) in resent]
            kept.extend(m for i, m in enumerate(chosen) if str(i) not in resent)
            if done:
                client.delete_message_batch(QueueUrl=dead_letter_url, Entries=done)
            moved += len(done)
            if sent.get("Failed"):
                reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in sent["Failed"])
                raise CliError(f"{moved} moved, then SQS refused to re-send {len(sent['Failed'])}: {reasons}; "
                               "the rest are still in the DLQ: run the redrive again")
    finally:
        release(client, dead_letter_url, kept)
    return moved


def _queue_arn(client: Any, url: str) -> str:
    return str(client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    filtered = bool(args.task or args.error)
    if filtered and args.method == "move":
        raise CliError("SQS's move task cannot filter: a redrive with --task or --error copies (--method copy)")
    with operations() as ops:
        ref, dead_letter_url = _dead_letter(ops, args.queue)
        if ref.holds_jobs:
            raise CliError(f"{ref.label} holds failed job deliveries, with no queue to go back to: "
                           f"`expensebot ops dlq retry {ref.label} ID…` re-runs a job for its slot")
        client = ops.sqs
        queue_url = ops.url(QueueRef(ref.source_logical_id or "", ref.task_queue))
        if not filtered and args.method in ("auto", "move"):
            try:
                task = client.start_message_move_task(SourceArn=_queue_arn(client, dead_letter_url),
                                                      DestinationArn=_queue_arn(client, queue_url))
            except (ClientError, NotImplementedError) as exc:
                if args.method == "move":
                    raise CliError(f"StartMessageMoveTask failed: {exc}; try --method copy") from exc
            else:
                print(f"redrive started by SQS (move task {task['TaskHandle'][:24]}…): "
                      f"{ref.task_queue!r} DLQ → {ref.task_queue!r}; `ops queues` shows it emptying")
                return 0
        matches = message_filter(args.task, args.error, ref, ops.runtime.settings.tz) if filtered else None
        moved = redrive_by_copy(client, dead_letter_url, queue_url, matches=matches)
    which = " matching" if filtered else ""
    print(f"redrove {moved}{which} message(s) from the {ref.task_queue!r} DLQ back to {ref.task_queue!r} "
          "(copied, then deleted)")
    return 0


# --- the parser ------------------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="the seven dead-letter queues: show, retry, drop, redrive")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    queue_help = f"the DLQ, or the queue whose DLQ: {queue_names_help()}"

    show = dlq_sub.add_parser("show", help="peek at the DLQ's messages and their errors (none consumed)")
    show.add_argument("queue", help=queue_help)
    show.add_argument("--id", action="append", metavar="ID", help="only this message id (repeatable)")
    show.add_argument("--max", type=int, default=50, help="messages to show (default 50)")
    show.add_argument("--json", action="store_true", help="print the messages as JSON")
    show.set_defaults(func=cmd_dlq_show)

    retry = dlq_sub.add_parser("retry", help="re-send a task message to its queue, or re-run a job's slot; "
                                             "then delete it from the DLQ")
    retry.add_argument("queue", help=queue_help)
    retry.add_argument("id", nargs="+", help="message ids (`ops dlq show` lists them)")
    retry.set_defaults(func=cmd_dlq_retry)

    drop = dlq_sub.add_parser("drop", help="delete messages from the DLQ for good")
    drop.add_argument("queue", help=queue_help)
    drop.add_argument("id", nargs="+", help="message ids (`ops dlq show` lists them)")
    drop.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drop.set_defaults(func=cmd_dlq_drop)

    redrive = dlq_sub.add_parser("redrive", help="move the DLQ's messages (or the matching ones) back to their queue")
    redrive.add_argument("queue", help=f"a task queue or its DLQ: {queue_help}")
    redrive.add_argument("--task", help="only messages of this task (comma-separated names)")
    redrive.add_argument("--error", help="only messages whose error contains this text (any case)")
    redrive.add_argument("--method", choices=("auto", "move", "copy"), default="auto",
                         help="move: SQS StartMessageMoveTask; copy: receive, re-send, delete; auto: move, else copy "
                              "(a filter always copies)")
    redrive.set_defaults(func=cmd_dlq_redrive)
