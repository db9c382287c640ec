"""The events AWS sends, built the way each service shapes them, so local runs and tests call the
handlers exactly as Lambda would (the same shapes as infra/events/*.json and `sam local generate-event`)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class LocalLambdaContext:
    """What Lambda passes as `context`; Powertools reads these attributes."""

    function_name: str = "local-function"
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 600
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.invoked_function_arn:
            self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def schedule_event(input_template: str, scheduled_time: datetime, *, attempt: int = 1,
                   execution_id: str | None = None) -> dict[str, Any]:
    """What EventBridge Scheduler delivers: the schedule's Input with its context attributes filled in.
    The scheduled time is in UTC with a Z, as Scheduler writes it."""
    utc = scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (
        input_template.replace("<aws.scheduler.scheduled-time>", utc)
        .replace("<aws.scheduler.execution-id>", execution_id or str(uuid.uuid4()))
        .replace("<aws.scheduler.attempt-number>", str(attempt))
        .replace("<aws.scheduler.schedule-arn>", "arn:aws:scheduler:us-east-1:123456789012:schedule/local")
    )
    return json.loads(text)


def api_gateway_event(body: str | dict[str, Any], *, secret: str | None, path: str = "/webhook",
                      base64_body: bool = False) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) request, as API Gateway hands it to the function."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    headers = {"content-type": "application/json", "host": "localhost"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "TelegramBot (like TwitterBot)"},
            "requestId": str(uuid.uuid4()),
            "routeKey": f"POST {path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": base64.b64encode(text.encode()).decode() if base64_body else text,
        "isBase64Encoded": base64_body,
    }


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A record of Lambda's SQS event, from a message as ReceiveMessage returned it."""
    attributes = message.get("Attributes", {})
    body = message["Body"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 3 else "us-east-1",
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn) for m in messages]}
