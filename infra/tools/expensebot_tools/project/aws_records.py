"""The records AWS writes to the failure queues, shared by `local up` (which writes them as AWS would) and
`ops` (which reads them).

Lambda's on-failure destination for an asynchronous invocation (the jobs' EventInvokeConfig sends it to
JobFailureQueue) receives this JSON document:
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def async_failure_record(function_arn: str, request_id: str, payload: Any, error_type: str, error_message: str,
                         attempts: int, stack_trace: list[str] | None = None,
                         at: datetime | None = None) -> dict[str, Any]:
    """Lambda's record of an asynchronous invocation whose retries ran out (condition RetriesExhausted)."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "1.0",
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": error_message, "errorType": error_type,
                            "stackTrace": list(stack_trace or [])},
    }
