"""SQS: send task messages in batches of ten (SendMessageBatch), retrying entries SQS failed."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from expensebot.errors import ConfigurationError, EnqueueError

# The application's queues (the template's QUEUE_URL_* name each). Defined here, not in config: the worker and
# the task registry need the names at import, and config brings pydantic-settings, which only building the
# runtime needs.
QUEUE_NAMES = ("default", "reports", "recurring", "maintenance", "notifications")
SQS_BATCH_LIMIT = 10  # SendMessageBatch takes at most ten entries
SQS_MAX_DELAY_SECONDS = 900
SEND_ATTEMPTS = 3
MAX_VISIBILITY = 12 * 60 * 60  # ChangeMessageVisibility's ceiling


@dataclass(frozen=True)
class QueueDepth:
    """SQS's approximate counts (they lag by up to a minute, as the console's do)."""

    waiting: int
    in_flight: int
    delayed: int
    dead_letter: int


_DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    delay_seconds: int = 0


class QueueClient:
    """The application's queues by name. Their URLs, and their DLQs', come from the configuration (the
    template's QUEUE_URL_* and DEAD_LETTER_QUEUE_URL_*), so the functions never ask SQS for a URL; a DLQ
    not configured (an operator's shell) is found through the queue's redrive policy."""

    def __init__(self, queue_url: Callable[[str], str | None], client_factory: Callable[[], Any],
                 dead_letter_queue_url: Callable[[str], str | None] | None = None) -> None:
        self._queue_url = queue_url
        self._configured_dead_letter_url = dead_letter_queue_url or (lambda _queue: None)
        self._client_factory = client_factory
        self._client: Any = None
        self._urls_by_arn: dict[str, str] = {}
        self._dead_letter_urls: dict[str, str] = {}

    @property
    def client(self) -> Any:
        # Created on first use: boto3 clients cost ~100 ms to build, and the webhook rarely needs one.
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def url(self, queue: str) -> str:
        url = self._queue_url(queue)
        if not url:
            raise ConfigurationError(f"no URL for the {queue!r} queue: set QUEUE_URL_{queue.upper()}")
        return url

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Sends every message or raises EnqueueError naming what was not sent. Returns the count sent."""
        return self.send_to_url(self.url(queue), messages, label=queue)

    def send_to_url(self, url: str, messages: Sequence[OutgoingMessage], *, label: str | None = None) -> int:
        label = label or url.rsplit("/", 1)[-1]
        sent = 0
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start : start + SQS_BATCH_LIMIT]
            pending = {
                str(i): {
                    "Id": str(i),
                    "MessageBody": message.body,
                    "DelaySeconds": max(0, min(SQS_MAX_DELAY_SECONDS, message.delay_seconds)),
                }
                for i, message in enumerate(chunk)
            }
            failures: list[dict[str, Any]] = []
            for _ in range(SEND_ATTEMPTS):
                response = self.client.send_message_batch(QueueUrl=url, Entries=list(pending.values()))
                for ok in response.get("Successful", []):
                    pending.pop(ok["Id"], None)
                    sent += 1
                failures = response.get("Failed", [])
                # SenderFault entries (a malformed message) will fail again: stop at once.
                if not pending or any(f.get("SenderFault") for f in failures):
                    break
            if pending:
                reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failures) or "unknown"
                raise EnqueueError(f"{len(pending)} message(s) not sent to {label!r}: {reasons}")
        return sent

    def depth(self, queue: str) -> QueueDepth:
        """Messages waiting, in flight and delayed on a queue, and waiting in its DLQ (the seed's LLEN)."""
        url = self.url(queue)
        counts = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=_DEPTH_ATTRIBUTES)["Attributes"]
        dead = self.client.get_queue_attributes(
            QueueUrl=self.dead_letter_url(url), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return QueueDepth(
            waiting=int(counts.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(counts.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(counts.get("ApproximateNumberOfMessagesDelayed", 0)),
            dead_letter=int(dead.get("ApproximateNumberOfMessages", 0)),
        )

    def change_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        """When the message comes back: SQS allows 0 s to 12 h from now."""
        self.client.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(MAX_VISIBILITY, seconds))
        )

    def _configured_urls(self) -> list[tuple[str, str | None]]:
        """(queue URL, its DLQ's URL) for every configured queue."""
        return [(url, self._configured_dead_letter_url(queue)) for queue in QUEUE_NAMES
                if (url := self._queue_url(queue))]

    def url_for_arn(self, queue_arn: str) -> str:
        """arn:aws:sqs:<region>:<account>:<name> → the queue's URL: a configured queue's or DLQ's URL that
        ends in <account>/<name>, else asked of SQS once (GetQueueUrl), then cached."""
        if queue_arn not in self._urls_by_arn:
            _, _, _, _, account, name = queue_arn.split(":", 5)
            known = [url for pair in self._configured_urls() for url in pair if url]
            match = next((url for url in known if url.rstrip("/").endswith(f"/{account}/{name}")), None)
            self._urls_by_arn[queue_arn] = match or self.client.get_queue_url(
                QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._urls_by_arn[queue_arn]

    def dead_letter_url(self, queue_url: str) -> str:
        """The queue's DLQ: the configured one, else the one its redrive policy names (asked once, cached)."""
        configured = next((dlq for url, dlq in self._configured_urls() if url == queue_url and dlq), None)
        if configured:
            return configured
        if queue_url not in self._dead_letter_urls:
            attributes = self.client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
            policy = attributes.get("Attributes", {}).get("RedrivePolicy")
            if not policy:
                raise ConfigurationError(f"{queue_url} has no redrive policy, so no dead-letter queue")
            self._dead_letter_urls[queue_url] = self.url_for_arn(json.loads(policy)["deadLetterTargetArn"])
        return self._dead_letter_urls[queue_url]

    def park(self, queue_url: str, body: str, *, error: str, task: str | None) -> None:
        """Puts a message no retry can fix straight into the queue's DLQ, with the reason beside it."""
        attributes = {"error": {"DataType": "String", "StringValue": error[:1000] or "unknown"}}
        if task:
            attributes["task"] = {"DataType": "String", "StringValue": task}
        self.client.send_message(QueueUrl=self.dead_letter_url(queue_url), MessageBody=body,
                                 MessageAttributes=attributes)
