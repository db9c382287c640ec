"""The two records AWS leaves in the jobs' dead-letter queues, built (by the local stack, as AWS writes them)
and parsed (by `ops dlq`) with one model each, so what the local system writes is what AWS writes.

- JobFailureQueue is the job functions' on-failure destination (EventInvokeConfig.DestinationConfig): after a
  job raised on every attempt of an asynchronous invocation, Lambda sends an invocation record, JSON of
  version, timestamp, requestContext {requestId, functionArn, condition, approximateInvokeCount},
  requestPayload (the event the function got: Scheduler's Input), responseContext {statusCode,
  executedVersion, functionError} and responsePayload (the error: errorMessage, errorType, stackTrace).
- SchedulerDeadLetterQueue is the schedules' DeadLetterConfig: when Scheduler could not deliver the event
  (permissions, throttling past the retry policy), it sends the target's Input as the body, with message
  attributes ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS, SCHEDULE_ARN and
  TARGET_ARN (EventBridge Scheduler User Guide, "Configuring a dead-letter queue").
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ASYNC_RECORD_VERSION = "1.0"
# Lambda's conditions for an on-failure record: the retries ran out, or the event waited too long.
FailureCondition = Literal["RetriesExhausted", "EventAgeExceeded"]
SCHEDULER_ATTRIBUTES = ("ERROR_CODE", "ERROR_MESSAGE", "EXHAUSTED_RETRY_CONDITION", "RETRY_ATTEMPTS",
                        "SCHEDULE_ARN", "TARGET_ARN")


class _Record(BaseModel):
    # AWS may add fields: parsing keeps working, and what is kept is what is read.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RequestContext(_Record):
    request_id: str = Field(alias="requestId")
    function_arn: str = Field(alias="functionArn")
    condition: str
    approximate_invoke_count: int = Field(alias="approximateInvokeCount")


class ResponseContext(_Record):
    status_code: int = Field(200, alias="statusCode")
    executed_version: str = Field("$LATEST", alias="executedVersion")
    function_error: str | None = Field("Unhandled", alias="functionError")


class ErrorPayload(_Record):
    error_message: str = Field("", alias="errorMessage")
    error_type: str = Field("", alias="errorType")
    stack_trace: list[str] = Field(default_factory=list, alias="stackTrace")


class AsyncFailureRecord(_Record):
    """Lambda's invocation record for an asynchronous invocation that failed (the on-failure destination's
    message body)."""

    version: str = ASYNC_RECORD_VERSION
    timestamp: datetime
    request_context: RequestContext = Field(alias="requestContext")
    request_payload: Any = Field(None, alias="requestPayload")
    response_context: ResponseContext = Field(default_factory=ResponseContext, alias="responseContext")
    # The handler's error (errorMessage, errorType, stackTrace), or whatever a failing runtime returned.
    response_payload: Any = Field(None, alias="responsePayload")

    @property
    def function_name(self) -> str:
        """arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>] → <name>."""
        parts = self.request_context.function_arn.split(":")
        return parts[6] if len(parts) > 6 else self.request_context.function_arn

    @property
    def error_payload(self) -> ErrorPayload | None:
        if not isinstance(self.response_payload, dict):
            return None
        try:
            return ErrorPayload.model_validate(self.response_payload)
        except ValidationError:
            return None

    @property
    def error(self) -> str:
        payload = self.error_payload
        if payload is not None and (payload.error_type or payload.error_message):
            return f"{payload.error_type}: {payload.error_message}" if payload.error_type else payload.error_message
        if self.response_payload is not None:
            return json.dumps(self.response_payload, ensure_ascii=False)
        return self.response_context.function_error or ""

    def to_json(self) -> str:
        # Lambda writes its timestamp in UTC with milliseconds and a Z.
        data = self.model_dump(mode="json", by_alias=True)
        data["timestamp"] = self.timestamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json.dumps(data, ensure_ascii=False)


def _qualified(function_arn: str) -> str:
    """Lambda names the version that ran in the record's functionArn (`…:function:name:$LATEST`)."""
    return function_arn if function_arn.count(":") >= 7 else f"{function_arn}:$LATEST"


def async_failure_record(function_arn: str, request_id: str, payload: Any, error_type: str, error_message: str,
                         attempts: int, *, condition: FailureCondition = "RetriesExhausted",
                         stack_trace: list[str] | None = None, timestamp: datetime | None = None) -> str:
    """The JSON body Lambda sends to an on-failure destination after `attempts` invocations of
    `function_arn` with the event `payload` all raised `error_type: error_message`."""
    record = AsyncFailureRecord(
        timestamp=timestamp or datetime.now(UTC),
        request_context=RequestContext(request_id=request_id or str(uuid.uuid4()),
                                       function_arn=_qualified(function_arn),
                                       condition=condition, approximate_invoke_count=attempts),
        request_payload=payload,
        response_context=ResponseContext(status_code=200, executed_version="$LATEST", function_error="Unhandled"),
        response_payload=ErrorPayload(error_message=error_message, error_type=error_type,
                                      stack_trace=stack_trace or []).model_dump(by_alias=True),
    )
    return record.to_json()


def parse_async_failure_record(body: str) -> AsyncFailureRecord | None:
    """The record in a JobFailureQueue message, or None when the body is not one (e.g. sent by hand)."""
    try:
        return AsyncFailureRecord.model_validate_json(body)
    except ValidationError:
        return None


class SchedulerDeadLetter(_Record):
    """A SchedulerDeadLetterQueue message: the target's Input as the body, the failure as attributes."""

    body: str
    error_code: str = ""
    error_message: str = ""
    exhausted_retry_condition: str = ""
    retry_attempts: int = 0
    schedule_arn: str = ""
    target_arn: str = ""

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def error(self) -> str:
        return f"{self.error_code}: {self.error_message}" if self.error_code else self.error_message

    @property
    def schedule_name(self) -> str:
        """arn:aws:scheduler:<region>:<account>:schedule/<group>/<name> → <name>."""
        return self.schedule_arn.rsplit("/", 1)[-1]

    def message_attributes(self) -> dict[str, dict[str, str]]:
        values = {"ERROR_CODE": self.error_code, "ERROR_MESSAGE": self.error_message,
                  "EXHAUSTED_RETRY_CONDITION": self.exhausted_retry_condition,
                  "RETRY_ATTEMPTS": str(self.retry_attempts), "SCHEDULE_ARN": self.schedule_arn,
                  "TARGET_ARN": self.target_arn}
        # SQS refuses an empty attribute value: Scheduler leaves out what it does not know.
        return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


def scheduler_dead_letter(payload: Any, *, error_code: str, error_message: str, schedule_arn: str,
                          target_arn: str, retry_attempts: int,
                          exhausted_retry_condition: str = "MaximumRetryAttempts") -> SchedulerDeadLetter:
    """What Scheduler sends to a schedule's DLQ when it gave up delivering `payload` (the Input, context
    attributes filled in) to `target_arn`; send it with `body` and `message_attributes()`."""
    body = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return SchedulerDeadLetter(body=body, error_code=error_code, error_message=error_message,
                               exhausted_retry_condition=exhausted_retry_condition, retry_attempts=retry_attempts,
                               schedule_arn=schedule_arn, target_arn=target_arn)


def parse_scheduler_dead_letter(message: dict[str, Any]) -> SchedulerDeadLetter | None:
    """A received SQS message (ReceiveMessage's shape, MessageAttributeNames=["All"]) as Scheduler's dead
    letter, or None when it carries none of Scheduler's attributes."""
    attributes = message.get("MessageAttributes") or {}
    values = {name: str(attributes[name].get("StringValue", "")) for name in SCHEDULER_ATTRIBUTES
              if name in attributes}
    if not values:
        return None
    try:
        attempts = int(values.get("RETRY_ATTEMPTS", "0") or 0)
    except ValueError:
        attempts = 0
    return SchedulerDeadLetter(body=message.get("Body", ""), error_code=values.get("ERROR_CODE", ""),
                               error_message=values.get("ERROR_MESSAGE", ""),
                               exhausted_retry_condition=values.get("EXHAUSTED_RETRY_CONDITION", ""),
                               retry_attempts=attempts, schedule_arn=values.get("SCHEDULE_ARN", ""),
                               target_arn=values.get("TARGET_ARN", ""))
