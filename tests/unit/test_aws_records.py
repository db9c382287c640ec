"""The failure records of the jobs' two DLQs, as AWS writes them: what the local stack sends and what
`ops dlq` reads must be the same shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from expensebot_tools.project.aws_records import (
    async_failure_record,
    parse_async_failure_record,
    parse_scheduler_dead_letter,
    scheduler_dead_letter,
)

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:expensebot-local-CheckBudgetLimitsFunction"
EVENT = {"job": "check_budget_limits", "scheduled_time": "2026-03-10T06:30:00Z", "execution_id": "e", "attempt": 1}


def test_lambdas_on_failure_record_has_the_documented_fields_and_reads_back():
    body = async_failure_record(FUNCTION_ARN, "req-1", EVENT, "RuntimeError", "database gone", 3,
                                timestamp=datetime(2026, 3, 10, 6, 33, 1, 250000, tzinfo=UTC))

    record = json.loads(body)
    assert record == {
        "version": "1.0",
        "timestamp": "2026-03-10T06:33:01.250Z",
        # Lambda names the version that ran.
        "requestContext": {"requestId": "req-1", "functionArn": f"{FUNCTION_ARN}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": EVENT,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "database gone", "errorType": "RuntimeError", "stackTrace": []},
    }
    parsed = parse_async_failure_record(body)
    assert parsed is not None
    assert (parsed.function_name, parsed.error, parsed.request_payload) == (
        "expensebot-local-CheckBudgetLimitsFunction", "RuntimeError: database gone", EVENT)


def test_a_record_of_a_runtime_failure_without_an_error_type_still_says_what_failed():
    record = json.loads(async_failure_record(FUNCTION_ARN, "r", EVENT, "", "", 1, condition="EventAgeExceeded"))
    record["responsePayload"] = None
    parsed = parse_async_failure_record(json.dumps(record))
    assert parsed is not None and parsed.error == "Unhandled"
    assert parse_async_failure_record('{"task": "default.debug_task"}') is None
    assert parse_async_failure_record("not json") is None


def test_schedulers_dead_letter_is_the_input_with_its_error_as_message_attributes():
    letter = scheduler_dead_letter(EVENT, error_code="Lambda.ThrottlingException", error_message="Rate exceeded",
                                   schedule_arn="arn:aws:scheduler:us-east-1:123456789012:schedule/default/"
                                                "expensebot-dev-check_budget_limits",
                                   target_arn=FUNCTION_ARN, retry_attempts=10)
    attributes = letter.message_attributes()
    assert set(attributes) == {"ERROR_CODE", "ERROR_MESSAGE", "EXHAUSTED_RETRY_CONDITION", "RETRY_ATTEMPTS",
                               "SCHEDULE_ARN", "TARGET_ARN"}
    assert all(value["DataType"] == "String" for value in attributes.values())
    assert json.loads(letter.body) == EVENT

    parsed = parse_scheduler_dead_letter({"Body": letter.body, "MessageAttributes": attributes})
    assert parsed is not None
    assert (parsed.error, parsed.retry_attempts, parsed.schedule_name, parsed.payload) == (
        "Lambda.ThrottlingException: Rate exceeded", 10, "expensebot-dev-check_budget_limits", EVENT)
    assert parse_scheduler_dead_letter({"Body": "{}", "MessageAttributes": {}}) is None
