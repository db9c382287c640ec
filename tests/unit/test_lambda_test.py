"""The pure parts of `expensebot lambda-test`: the `--env-vars` file it generates from the template, the cases
against the template and the event files, and how an answer is judged and shown."""

from __future__ import annotations

import json

from expensebot_tools.local.lambda_test import CASES, Case, judge, render_table, sam_env_vars, uncovered
from expensebot_tools.local.stack import LOCAL_WEBHOOK_SECRET, LocalQueues
from tests.conftest import load_event

HOST = "http://172.17.0.1:41000"
LOCAL_RUN_VARIABLES = {"DATABASE_URL", "TELEGRAM_BOT_TOKEN", "WEBHOOK_SECRET", "TELEGRAM_API_BASE", "APP_TIMEZONE",
                       "SQS_ENDPOINT_URL"}


def _env(template) -> dict[str, dict[str, str]]:
    queues = LocalQueues(
        urls={q: f"{HOST}/123456789012/expensebot-local-{q}" for q in template.queues},
        arns={q: f"arn:aws:sqs:us-east-1:123456789012:expensebot-local-{q}" for q in template.queues},
    )
    return sam_env_vars(template, queues, database_url="postgresql://postgres@172.17.0.1:41001/expensebot",
                        telegram_api_base="http://172.17.0.1:41002", sqs_endpoint_url=HOST, admin_chat_ids="9001")


def test_the_env_file_names_exactly_the_functions_of_the_template(template):
    assert set(_env(template)) == set(template.functions)


def test_the_env_file_gives_every_function_the_running_stack_and_the_plain_secrets(template):
    queue_variables = {name for name in template.globals["Environment"]["Variables"] if name.startswith("QUEUE_URL_")}
    webhook_secret = load_event("apigw_webhook_expense.json")["headers"]["x-telegram-bot-api-secret-token"]
    for function_id, variables in _env(template).items():
        assert LOCAL_RUN_VARIABLES | queue_variables <= set(variables), function_id
        assert all(isinstance(value, str) for value in variables.values()), function_id
        assert variables["DATABASE_URL"].startswith("postgresql://postgres@172.17.0.1:41001/")
        assert variables["APP_TIMEZONE"] == template.parameter_defaults()["TimeZone"]
        assert variables["WEBHOOK_SECRET"] == webhook_secret == LOCAL_WEBHOOK_SECRET
        assert variables["TELEGRAM_BOT_TOKEN_SECRET_NAME"] == ""
        for name in queue_variables:
            queue_id = name.removeprefix("QUEUE_URL_").capitalize() + "Queue"
            assert variables[name] == f"{HOST}/123456789012/expensebot-local-{queue_id}", (function_id, name)


def test_every_variable_of_the_env_file_is_declared_in_the_template_so_sam_local_applies_it(template):
    declared_globally = set(template.globals["Environment"]["Variables"])
    for function_id, variables in _env(template).items():
        declared = declared_globally | set(template.own_environment(function_id))
        assert set(variables) <= declared, (function_id, sorted(set(variables) - declared))


def test_each_function_keeps_its_own_variables(template):
    env = _env(template)
    assert env["CheckBudgetLimitsFunction"]["JOB_NAME"] == "check_budget_limits"
    assert env["MaintenanceWorkerFunction"]["QUEUE_NAME"] == "maintenance"
    assert env["WebhookFunction"]["WEBHOOK_SECRET_NAME"] == ""


def test_the_cases_invoke_every_function_and_use_every_event_file(template):
    assert uncovered(template) == []
    assert uncovered(template, CASES[1:]) == []  # the first event is used again by the second case
    assert uncovered(template, CASES[:4]) != []


def test_every_worker_has_a_good_and_a_poison_case_and_the_webhook_its_three_answers():
    workers = {case.function_id for case in CASES if "batchItemFailures" in case.answer}
    for worker in workers:
        parked = [case.effects.get(k, 0) for case in CASES if case.function_id == worker for k in case.effects
                  if k.startswith("parked:")]
        assert 0 in parked and 1 in parked, worker
    codes = {case.answer["statusCode"] for case in CASES if case.function_id == "WebhookFunction"}
    assert {200, 401, 400} <= codes


def test_a_case_passes_when_the_answer_and_every_probe_match():
    case = Case("WebhookFunction", "apigw_webhook_expense.json", {"statusCode": 200, "body.status": "handled"},
                {"rows:expenses": 1, "sent:1001": 1})
    answer = {"statusCode": 200, "body": json.dumps({"status": "handled"})}

    outcome = judge(case, answer, {"rows:expenses": 1, "sent:1001": 1}, 2.5)

    assert outcome.ok and outcome.problems == []
    assert outcome.expected == "HTTP 200, status handled, expenses rows +1, sent to 1001 +1"
    assert outcome.got == "200, handled, +1, +1"


def test_a_wrong_answer_a_missing_effect_or_an_error_is_a_mismatch():
    case = Case("NotificationsWorkerFunction", "sqs_poison_message.json", {"batchItemFailures": []},
                {"parked:NotificationsDeadLetterQueue": 1})

    failed_item = judge(case, {"batchItemFailures": [{"itemIdentifier": "m1"}]},
                        {"parked:NotificationsDeadLetterQueue": 1}, 1.0)
    not_parked = judge(case, {"batchItemFailures": []}, {"parked:NotificationsDeadLetterQueue": 0}, 1.0)
    raised = judge(case, {"errorMessage": "boom", "errorType": "RuntimeError"}, {}, 1.0)

    assert not failed_item.ok and failed_item.got == "1, +1"
    assert not_parked.problems == ["parked:NotificationsDeadLetterQueue: expected +1, got +0"]
    assert not raised.ok and "the function raised RuntimeError: boom" in raised.problems
    assert raised.got == "(missing), +0"


def test_the_table_has_one_row_per_invocation_and_marks_mismatches():
    case = Case("DefaultWorkerFunction", "sqs_default_poison.json", {"batchItemFailures": []},
                {"parked:DefaultDeadLetterQueue": 1})
    outcomes = [judge(case, {"batchItemFailures": []}, {"parked:DefaultDeadLetterQueue": 1}, 3.21),
                judge(case, {"batchItemFailures": []}, {}, 4.0)]

    lines = render_table(outcomes).splitlines()

    assert lines[0].split() == ["function", "event", "expected", "got", "duration", "result"]
    assert len(lines) == 4
    assert "parked in DefaultDLQ +1" in lines[2] and "3.2 s" in lines[2] and lines[2].endswith(" ok")
    assert lines[3].endswith("MISMATCH")


def test_a_machine_with_neither_docker_nor_root_skips_with_one_line_and_exit_0(monkeypatch, tmp_path, capsys):
    import argparse

    from expensebot_tools.local import docker as lambda_docker
    from expensebot_tools.local import lambda_test

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sam").touch()
    monkeypatch.setattr(lambda_docker, "docker_answers", lambda: False)
    monkeypatch.setattr(lambda_docker, "can_set_up", lambda: False)

    code = lambda_test.cmd_lambda_test(argparse.Namespace(sam_venv=str(tmp_path), json=False))

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out == ["make lambda-test: SKIPPED: no Docker daemon answers here, and setting one up needs root on "
                   "Debian (apt-get)"]


def test_the_base_image_is_the_real_one_when_here_or_reachable_and_else_the_stand_in_built_once(monkeypatch):
    from expensebot_tools.local import docker as lambda_docker

    built = []
    monkeypatch.setattr(lambda_docker, "build_standin", lambda machine: built.append(machine))
    machine = lambda_docker.Machine(log=lambda text: None)

    def decide(labels, resolves, **env):
        monkeypatch.setattr(lambda_docker, "image_labels", lambda image: labels)
        monkeypatch.setattr(lambda_docker, "registry_resolves", lambda: resolves)
        monkeypatch.delenv("LAMBDA_TEST_BASE_IMAGE", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return lambda_docker.ensure_base_image(machine)

    standin = {lambda_docker.STANDIN_LABEL: lambda_docker.recipe_digest()}
    assert decide({}, False).pull is False and built == []  # the real image, pulled earlier
    assert decide(None, True).pull is True and built == []  # SAM pulls it
    assert "reused" in decide(standin, False).how and built == []
    assert decide({lambda_docker.STANDIN_LABEL: "older"}, False).pull is False and len(built) == 1
    assert decide(None, True, LAMBDA_TEST_BASE_IMAGE="standin").pull is False and len(built) == 2
