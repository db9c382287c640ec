"""SQS: send task messages in batches of ten (SendMessageBatch), retrying entries SQS failed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from expensebot.errors import ConfigurationError, EnqueueError

SQS_BATCH_LIMIT = 10  # SendMessageBatch takes at most ten entries
SQS_MAX_DELAY_SECONDS = 900
SEND_ATTEMPTS = 3


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    delay_seconds: int = 0


class QueueClient:
    def __init__(self, queue_url: Callable[[str], str | None], client_factory: Callable[[], Any]) -> None:
        self._queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None

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
        url = self.url(queue)
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
                raise EnqueueError(f"{len(pending)} message(s) not sent to {queue!r}: {reasons}")
        return sent

    def change_visibility(self, queue: str, receipt_handle: str, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.url(queue), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def depth(self, queue_url: str) -> dict[str, int]:
        attributes = self.client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "waiting": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        }
