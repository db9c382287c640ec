"""`expensebot local up`: the whole application in real time on this machine, for trying the bot by hand.

What runs, all wired from template.yaml as `expensebot simulate` wires it, but on the wall clock:
- the webhook, served on 127.0.0.1:<port> at `POST /webhook`: each request becomes the API Gateway HTTP API
  (payload 2.0) event and the handler's statusCode/headers/body are the answer, as `sam local start-api` does;
- the schedules: every ENABLED schedule fires its job at its cron times in its time zone
  (schedules.fire_times, planned a few minutes ahead), retried twice if it raises, as Lambda's async invoke;
- the workers: each subscribed queue is polled, its batch handed to its worker, the records that succeeded
  deleted (the others come back after their visibility timeout, then go to the DLQ by the redrive policy);
- the Telegram Bot API stand-in, writing every call to the outbox file;
- moto's server on 127.0.0.1:<aws-port>, so `AWS_ENDPOINT_URL=http://127.0.0.1:<aws-port>` reaches the queues
  from another terminal (the AWS CLI, boto3, `expensebot` commands).
With --polling and a real TELEGRAM_BOT_TOKEN, updates come from api.telegram.org by getUpdates long polling
instead of the local webhook, and the bot's replies go to Telegram: a phone talks to the bot while every job
runs here. Ctrl-C (SIGINT) or SIGTERM stops it: the servers shut down, the threads are joined.

Lambda runs one invocation at a time per execution environment, and the library keeps per-process state (the
runtime, the webhook's event loop, the function's environment variables): so every invocation here goes
through one invoker thread, in arrival order."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import traceback
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from expensebot_tools.local.control_plane import (
    HANDOVER_DIR,
    METRICS_FILE,
    ControlPlane,
    FunctionLogs,
    create_control_plane,
    handed_over,
    handover_variables,
)
from expensebot_tools.local.metrics import captured_metrics
from expensebot_tools.local.stack import (
    LOCAL_BOT_TOKEN,
    LOCAL_WEBHOOK_SECRET,
    EmbeddedPostgres,
    LocalSystem,
    environment,
    local_environment,
    migrate_database,
    running_system,
)
from expensebot_tools.project.aws_records import async_failure_record
from expensebot_tools.project.template import Template

TELEGRAM_API = "https://api.telegram.org"
PLAN_CYCLE_SECONDS = 60.0  # how often the schedules are read from Scheduler and their next fires planned
IDLE_POLL_SECONDS = 0.5  # a worker's pause after an empty receive
LONG_POLL_SECONDS = 5  # getUpdates timeout: short, so Ctrl-C is answered within seconds
LAMBDA_ASYNC_RETRIES = 2  # Lambda's default for an asynchronous invoke, when EventInvokeConfig sets none
Result = TypeVar("Result")


class Invoker:
    """Runs every function invocation on one thread, one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="invoker")

    def call(self, function: Callable[[], Result]) -> Result:
        return self._pool.submit(function).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class Fire:
    """One planned fire of a Scheduler schedule."""

    at: datetime
    name: str
    group: str
    one_time: bool


class LocalStack:
    """The running parts; `stop` (an Event) ends every loop. What the loops obey (the schedules and their
    state, the event source mappings' state) is read from moto, where `ops` changes it."""

    def __init__(self, system: LocalSystem, invoker: Invoker, zone_name: str, log: Callable[[str], None], *,
                 plane: ControlPlane, session: Any, function_logs: FunctionLogs | None = None,
                 schedule_cycle: float = PLAN_CYCLE_SECONDS) -> None:
        self.system = system
        self.invoker = invoker
        self.zone_name = zone_name
        self.stop = threading.Event()
        self.log = log
        self.threads: list[threading.Thread] = []
        self.plane = plane
        self.session = session
        self.function_logs = function_logs
        self.schedule_cycle = schedule_cycle

    def start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(name, target), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a dead loop must be seen, not silently missing
                self.log(f"{name} stopped: {type(exc).__name__}: {exc}")
        return run

    def invoke(self, function_id: str, call: Callable[[], Result]) -> Result:
        """Runs one invocation on the invoker thread; its log lines go to the function's log group, in a
        stream named after the calling thread, and an unhandled error is logged there as Lambda's runtime
        logs it."""
        caller = threading.current_thread().name
        logs = self.function_logs

        def invocation() -> Result:
            if logs is None:
                return call()
            with logs.invocation(function_id, caller):
                try:
                    return call()
                except Exception as exc:
                    logs.add_line(json.dumps({"level": "ERROR", "message": f"Unhandled {type(exc).__name__}",
                                              "errorType": type(exc).__name__, "errorMessage": str(exc),
                                              "stackTrace": traceback.format_exception(exc)}, ensure_ascii=False))
                    raise

        return self.invoker.call(invocation)

    # ------------------------------------------------------------------ webhook

    def post_update(self, update: dict[str, Any] | str, secret: str | None) -> dict[str, Any]:
        from expensebot_tools.local.events import api_gateway_event

        event = api_gateway_event(update, secret=secret)
        function_id = LocalSystem.WEBHOOK_FUNCTION
        return self.invoke(function_id, lambda: self.system.invoke(function_id, event))

    # ---------------------------------------------------------------- schedules

    def run_schedules(self) -> None:
        """EventBridge Scheduler's part: every cycle the schedules are read from moto, and each ENABLED one's
        fire times in the next cycle are planned (cron and rate in the schedule's time zone; a one-time
        `at(...)` whose time has come, also one created for a moment already past). Just before a fire its
        schedule is read again, so one disabled or deleted meanwhile does not fire."""
        scheduler = self.session.client("scheduler")
        cursor = datetime.now(UTC)
        fired_once: set[str] = set()  # one-time schedules already fired (by ARN and creation), kept or not
        while not self.stop.is_set():
            until = cursor + timedelta(seconds=self.schedule_cycle)
            for fire in self.plan(scheduler, cursor, until, fired_once):
                if self.stop.wait(max(0.0, (fire.at - datetime.now(UTC)).total_seconds())):
                    return
                self.fire_from(scheduler, fire, fired_once)
            if self.stop.wait(max(0.0, (until - datetime.now(UTC)).total_seconds())):
                return
            cursor = until

    def _schedules(self, scheduler: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in scheduler.get_paginator("list_schedules").paginate():
            found += page.get("Schedules", [])
        return found

    def plan(self, scheduler: Any, start: datetime, end: datetime, fired_once: set[str]) -> list[Fire]:
        from expensebot_tools.project.schedules import ScheduleExpressionError, fire_times

        fires: list[Fire] = []
        for summary in self._schedules(scheduler):
            if summary.get("State") != "ENABLED":
                continue
            try:
                schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=summary.get("GroupName", "default"))
            except scheduler.exceptions.ResourceNotFoundException:
                continue
            expression = schedule["ScheduleExpression"].strip()
            zone = schedule.get("ScheduleExpressionTimezone") or "UTC"
            one_time = expression.startswith("at(")
            try:
                if one_time:
                    if _once_key(schedule) in fired_once:
                        continue
                    # An at() time before this cycle (created late, or while the planner slept) fires now.
                    times = fire_times(expression, zone, datetime(1970, 1, 1, tzinfo=UTC), end)
                elif expression.startswith("rate("):
                    # A rate counts from the schedule's start (its creation unless StartDate), not this cycle.
                    anchor = schedule.get("StartDate") or schedule.get("CreationDate") or start
                    times = [at for at in fire_times(expression, zone, anchor, end) if at >= start]
                else:
                    times = fire_times(expression, zone, start, end)
            except ScheduleExpressionError as exc:
                self.log(f"schedule {schedule['Name']}: {exc}; not fired")
                continue
            fires += [Fire(at, schedule["Name"], schedule.get("GroupName", "default"), one_time) for at in times]
        return sorted(fires, key=lambda f: f.at)

    def fire_from(self, scheduler: Any, fire: Fire, fired_once: set[str]) -> None:
        """Delivers one fire as Scheduler does (the target's Input with its context attributes), if the
        schedule still exists and is ENABLED; a one-time schedule with ActionAfterCompletion DELETE is
        deleted once it fired."""
        from expensebot_tools.local.events import schedule_event

        try:
            schedule = scheduler.get_schedule(Name=fire.name, GroupName=fire.group)
        except scheduler.exceptions.ResourceNotFoundException:
            return
        if schedule.get("State") != "ENABLED":
            return
        target = schedule.get("Target", {})
        function_id = self.plane.function_for_arn(str(target.get("Arn", "")))
        if fire.one_time:
            fired_once.add(_once_key(schedule))
        if function_id is None:
            self.log(f"schedule {fire.name}: its target {target.get('Arn')} is not a function of this stack")
        else:
            input_text = str(target.get("Input") or "{}").replace("<aws.scheduler.schedule-arn>",
                                                                    str(schedule.get("Arn", "")))
            event = schedule_event(input_text, fire.at, execution_id=str(uuid.uuid4()))
            self.fire(function_id, fire.at, event=event, schedule_name=fire.name)
        if fire.one_time and schedule.get("ActionAfterCompletion") == "DELETE":
            with suppress(scheduler.exceptions.ResourceNotFoundException):
                scheduler.delete_schedule(Name=fire.name, GroupName=fire.group)

    def fire(self, function_id: str, at: datetime, *, event: dict[str, Any], schedule_name: str = "") -> None:
        """Lambda's asynchronous invoke: the same event retried (EventInvokeConfig's MaximumRetryAttempts);
        when every attempt raised, Lambda's failure record goes to the on-failure destination."""
        retries = _retries(self.system.template, function_id)
        request_id = str(uuid.uuid4())
        error: BaseException | None = None
        for _ in range(1 + retries):
            try:
                outcome = self.invoke(function_id, lambda: self.system.invoke(function_id, event))
            except Exception as exc:
                error = exc
                continue
            summary = ", ".join(f"{k} {v}" for k, v in (outcome or {}).items() if k in ("status", "planned",
                                                                                       "enqueued"))
            self.log(f"{function_id} fired for {at.astimezone(ZoneInfo(self.zone_name)):%H:%M}"
                     f"{f' ({schedule_name})' if schedule_name else ''}: {summary}")
            return
        assert error is not None
        self.log(f"{function_id} failed {1 + retries} times for {at.isoformat()}: {type(error).__name__}: {error}")
        destination = _on_failure_queue(self.system.template, function_id)
        if destination is not None and destination in self.system.queues.urls:
            record = async_failure_record(self.plane.function_arns[function_id], request_id, event,
                                          type(error).__name__, str(error), 1 + retries,
                                          stack_trace=traceback.format_exception(error))
            self.system.sqs.send_message(QueueUrl=self.system.queues.urls[destination], MessageBody=record)

    # ------------------------------------------------------------------ workers

    def run_worker(self, queue_id: str, batch_size: int) -> None:
        """The queue's event source mapping: while it is Enabled, receive a batch (its BatchSize), hand it
        to the worker, delete the records that succeeded; while Disabled, nothing is received."""
        system = self.system
        function_id = system.worker_for(queue_id)
        mapping = self.plane.mappings.get(queue_id)
        lam = self.session.client("lambda")
        paused = False
        while not self.stop.is_set():
            if mapping is not None:
                try:
                    configuration = lam.get_event_source_mapping(UUID=mapping)
                except lam.exceptions.ResourceNotFoundException:  # deleted: Lambda no longer polls the queue
                    configuration = {"State": "Deleted"}
                if configuration.get("State") != "Enabled":
                    if not paused:
                        self.log(f"{queue_id}: event source mapping {configuration.get('State')}, not consuming")
                    paused = True
                    self.stop.wait(IDLE_POLL_SECONDS)
                    continue
                if paused:
                    self.log(f"{queue_id}: event source mapping Enabled, consuming again")
                paused = False
                batch_size = int(configuration.get("BatchSize") or batch_size)
            received = system.receive_raw(queue_id, max_messages=min(10, batch_size))
            if not received:
                self.stop.wait(IDLE_POLL_SECONDS)
                continue
            try:
                response = self.invoke(function_id, partial(system.invoke_worker, queue_id, received))
            except Exception as exc:  # the whole batch comes back after its visibility timeout
                self.log(f"{queue_id} worker raised {type(exc).__name__}: {exc}")
                continue
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            system.delete(queue_id, [m for m in received if m["MessageId"] not in failed])
            note = f", {len(failed)} failed (redelivered later)" if failed else ""
            self.log(f"{queue_id}: {len(received) - len(failed)} message(s) processed{note}")

    # ------------------------------------------------------------------ polling

    def run_polling(self, token: str, secret: str) -> None:
        """getUpdates long polling from Telegram; each update goes through the webhook handler."""
        offset: int | None = None
        while not self.stop.is_set():
            params: dict[str, Any] = {"timeout": LONG_POLL_SECONDS}
            if offset is not None:
                params["offset"] = offset
            try:
                updates = telegram_call(token, "getUpdates", params, timeout=LONG_POLL_SECONDS + 10)
            except TelegramCallError as exc:
                self.log(f"getUpdates: {exc}")
                if exc.code in (401, 404, 409):  # a wrong token or a webhook set: retrying will not help
                    self.stop.set()
                    return
                self.stop.wait(5)
                continue
            for update in updates:
                offset = int(update["update_id"]) + 1
                response = self.post_update(update, secret)
                self.log(f"update {update['update_id']}: webhook answered {response.get('statusCode')}")


def _once_key(schedule: dict[str, Any]) -> str:
    """A one-time schedule fires once; a schedule made again under the same name is a new one."""
    return f"{schedule.get('Arn')}@{schedule.get('CreationDate')}"


def _event_invoke_config(template: Template, function_id: str) -> dict[str, Any]:
    return dict(template.functions[function_id].properties.get("EventInvokeConfig") or {})


def _retries(template: Template, function_id: str) -> int:
    return int(_event_invoke_config(template, function_id).get("MaximumRetryAttempts", LAMBDA_ASYNC_RETRIES))


def _on_failure_queue(template: Template, function_id: str) -> str | None:
    """The logical id of the queue a function's async failures go to (EventInvokeConfig's OnFailure)."""
    destination = ((_event_invoke_config(template, function_id).get("DestinationConfig") or {})
                   .get("OnFailure") or {}).get("Destination")
    if isinstance(destination, dict) and "Fn::GetAtt" in destination:
        return str(destination["Fn::GetAtt"][0])
    return None


class TelegramCallError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code


def telegram_call(token: str, method: str, params: dict[str, Any], *, timeout: float, base: str = TELEGRAM_API) -> Any:
    request = urllib.request.Request(f"{base}/bot{token}/{method}", data=json.dumps(params).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read())
        except ValueError:
            raise TelegramCallError(exc.code, str(exc.reason)) from None
    except (OSError, ValueError) as exc:
        raise TelegramCallError(0, f"{type(exc).__name__}: {exc}") from None
    if not payload.get("ok"):
        description = str(payload.get("description", ""))
        if payload.get("error_code") == 409:
            description += " (this bot has a webhook; getUpdates works only once it is deleted)"
        raise TelegramCallError(int(payload.get("error_code", 0)), description)
    return payload["result"]


def _update_summary(body: str) -> str:
    try:
        update = json.loads(body)
        message = update.get("message") or {}
        sender = message.get("from", {}).get("id", "?")
        return f"update {update.get('update_id')} ({sender}: {message.get('text', '…')!r})"
    except (ValueError, AttributeError):
        return "a body that is not an update"


def webhook_server(stack: LocalStack, port: int) -> ThreadingHTTPServer:
    """API Gateway's HTTP API in front of the webhook function: POST /webhook, anything else 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/webhook":
                self._answer(404, {"content-type": "application/json"}, json.dumps({"message": "Not Found"}))
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
            try:
                response = stack.post_update(body, self.headers.get("X-Telegram-Bot-Api-Secret-Token"))
            except Exception as exc:  # API Gateway answers 500 when the function raises
                stack.log(f"webhook raised {type(exc).__name__}: {exc}")
                self._answer(500, {"content-type": "application/json"},
                             json.dumps({"message": "Internal Server Error"}))
                return
            response = response or {}
            stack.log(f"webhook: {_update_summary(body)} answered {response.get('statusCode', 200)}")
            headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
            self._answer(int(response.get("statusCode", 200)), headers, str(response.get("body") or ""))

        def do_GET(self) -> None:
            self._answer(404, {"content-type": "application/json"}, json.dumps({"message": "Not Found"}))

        def _answer(self, status: int, headers: dict[str, str], body: str) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server(port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """moto's server on `host` (a free port when 0): AWS over HTTP, shared by processes and containers."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call would drown the log
    server = ThreadedMotoServer(ip_address=host, port=port or free_port(host), verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()


@contextmanager
def _stopped_on_signals(stop: threading.Event) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_local_up(args: argparse.Namespace) -> int:
    try:
        return _local_up(args)
    except KeyboardInterrupt:  # Ctrl-C while starting, before the signal handlers are in place
        print("stopped while starting", file=sys.stderr)
        return 130


def _local_up(args: argparse.Namespace) -> int:
    from expensebot_tools.local.simulate import parameters_from_environment, template_zone_name

    template = Template()
    zone_name = template_zone_name(template)
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "")
    if args.polling and (not token or token == LOCAL_BOT_TOKEN):
        print("expensebot local up: --polling needs your bot's token in TELEGRAM_BOT_TOKEN", file=sys.stderr)
        return 2
    for option, port in (("--port", args.port), ("--aws-port", args.aws_port), ("--telegram-port", args.telegram_port),
                         ("--db-port", args.db_port)):
        if port and not _port_free(port):
            print(f"expensebot local up: 127.0.0.1:{port} is in use; choose another with {option}", file=sys.stderr)
            return 2
    if args.schedule_cycle <= 0:
        print("expensebot local up: --schedule-cycle must be a positive number of seconds", file=sys.stderr)
        return 2
    state = Path(args.state) if args.state else None
    outbox = Path(args.outbox)
    handover_dir = Path(args.env_dir).resolve() if args.env_dir else HANDOVER_DIR
    terminal_level = "INFO" if args.verbose else os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING")
    quiet = {"POWERTOOLS_SERVICE_NAME": "expensebot", "POWERTOOLS_METRICS_NAMESPACE": "ExpenseBot",
             # The functions print their metrics (EMF), which go to the metrics file, as Lambda's agent sends
             # them to CloudWatch: `ops dashboard --from-emf` draws them.
             "POWERTOOLS_METRICS_DISABLED": "false", "POWERTOOLS_LOG_LEVEL": terminal_level}
    fake_aws = {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                "AWS_DEFAULT_REGION": "us-east-1"}
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

    def log(text: str) -> None:
        print(f"{datetime.now(ZoneInfo(zone_name)):%H:%M:%S} {text}", flush=True)

    with ExitStack() as stack:
        stack.enter_context(environment({**quiet, **fake_aws}))
        # Kept after the stack stops (unlike local.env): the metrics are the run's record.
        stack.enter_context(captured_metrics(handover_dir / METRICS_FILE))
        endpoint = stack.enter_context(moto_server(args.aws_port))
        stack.enter_context(environment({"AWS_ENDPOINT_URL": endpoint}))
        import boto3

        from expensebot.clock import SystemClock
        from expensebot.observability import logger
        from expensebot_tools.local.telegram import TelegramStandIn

        # Every INFO line reaches the functions' log groups (`ops logs`); the terminal shows only
        # POWERTOOLS_LOG_LEVEL's (WARNING unless --verbose) besides local up's own summary lines.
        logger.setLevel("INFO")
        logger.registered_handler.setLevel(terminal_level)
        postgres = EmbeddedPostgres(state / "postgres" if state is not None else None,
                                    tcp_port=args.db_port or free_port())
        url = args.database_url or postgres.start()
        if not args.database_url:
            stack.callback(postgres.stop)
        migrate_database(url, timezone=zone_name)
        if args.polling:
            telegram: Any = argparse.Namespace(base_url=TELEGRAM_API)
        else:
            outbox.parent.mkdir(parents=True, exist_ok=True)
            tokens = {LOCAL_BOT_TOKEN, token} - {""}
            # Limits off, as in simulate: Telegram tolerates a short burst of replies that the stand-in's
            # strict model would refuse while someone types quickly.
            telegram = stack.enter_context(TelegramStandIn(
                port=args.telegram_port, tokens=tokens, outbox_path=outbox, accept_any_chat=True,
                enforce_limits=False, clock=lambda: datetime.now(ZoneInfo(zone_name))))
        parameters = {**parameters_from_environment(template), "TimeZone": zone_name}
        system = stack.enter_context(running_system(
            template=template, database_url=url, telegram=telegram, clock=SystemClock(), parameters=parameters))
        session = boto3.session.Session(region_name=fake_aws["AWS_DEFAULT_REGION"])
        plane = create_control_plane(template, system.queues.resolver(template, parameters), system.queues.urls,
                                     system.queues.arns, session)
        function_logs = FunctionLogs(session.client("logs"), plane.log_groups, logger.registered_formatter)
        logger.addHandler(function_logs)
        stack.callback(logging.getLogger(logger.name).removeHandler, function_logs)
        invoker = Invoker()
        stack.callback(invoker.close)
        local = LocalStack(system, invoker, zone_name, log, plane=plane, session=session,
                           function_logs=function_logs, schedule_cycle=args.schedule_cycle)
        server = webhook_server(local, args.port)
        stack.callback(server.server_close)
        secret = os.environ.get("WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET)
        handover = handover_variables(
            local_environment(template, system.queues, database_url=url, telegram_api_base=telegram.base_url,
                              parameters=parameters),
            database_url=args.database_url or postgres.tcp_url, resources_file=handover_dir / "resources.json",
            aws={**fake_aws, "AWS_ENDPOINT_URL": endpoint})
        if not args.polling:
            # What `expensebot webhook set` does after a deploy: Telegram (here the stand-in, which only
            # records it) knows where the bot's updates go, so `ops webhook info` and `ops doctor` see it.
            host, bound = server.server_address[:2]
            telegram_call(os.environ.get("TELEGRAM_BOT_TOKEN") or LOCAL_BOT_TOKEN, "setWebhook",
                          {"url": f"http://{host!s}:{bound}/webhook", "secret_token": secret}, timeout=10,
                          base=telegram.base_url)
        env_file = stack.enter_context(handed_over(handover_dir, handover, plane.resources))
        _print_addresses(server, endpoint, telegram, outbox, system, zone_name, secret, args.polling,
                         plane=plane, env_file=env_file, database_url=handover["DATABASE_URL"])
        stack.enter_context(_stopped_on_signals(local.stop))
        local.start_thread("webhook", lambda: server.serve_forever(poll_interval=0.2))
        local.start_thread("schedules", local.run_schedules)
        for subscription in template.subscriptions():
            local.start_thread(f"worker-{subscription.queue_id}",
                               lambda s=subscription: local.run_worker(s.queue_id, s.batch_size))
        if args.polling:
            local.start_thread("polling", lambda: local.run_polling(token, secret))
        while not local.stop.wait(0.5):
            pass
        log("stopping…")
        server.shutdown()
        for thread in local.threads:
            thread.join(timeout=LONG_POLL_SECONDS + 15)
        alive = [t.name for t in local.threads if t.is_alive()]
        if alive:
            log(f"still running after the wait, left to end with the process: {', '.join(alive)}")
    print("stopped", flush=True)
    return 0


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: only a listener counts
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _print_addresses(server: ThreadingHTTPServer, endpoint: str, telegram: Any, outbox: Path, system: LocalSystem,
                     zone_name: str, secret: str, polling: bool, *, plane: ControlPlane, env_file: Path,
                     database_url: str) -> None:
    host, port = server.server_address[:2]
    try:
        shown = env_file.relative_to(Path.cwd())
    except ValueError:
        shown = env_file
    lines = [f"expensebot local up ({zone_name}), real time; Ctrl-C stops it."]
    if polling:
        lines.append(f"  updates:   getUpdates long polling from {TELEGRAM_API} (the local webhook stays up too)")
    lines += [
        f"  webhook:   POST http://{host!s}:{port}/webhook  (header X-Telegram-Bot-Api-Secret-Token: {secret})",
        f"  AWS:       AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION=us-east-1 "
        "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
        f"  database:  {database_url}",
        f"  Telegram:  {telegram.base_url}" + ("" if polling else f"  (stand-in; every call in {outbox})"),
        "  queues:    " + ", ".join(url.rsplit("/", 1)[1] for url in system.queues.urls.values()),
        "  schedules: " + ", ".join(plane.schedule_names) + " (EventBridge Scheduler; `ops schedules`)",
        f"  other terminal: source {shlex.quote(str(shown))}   # then `expensebot ops doctor`, `ops queues`, ...",
    ]
    print("\n".join(lines), flush=True)


def add_parser(commands: Any) -> None:
    local = commands.add_parser("local", help="the whole system on this machine")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser("up", help="run the stack in real time: webhook, schedules, workers, AWS endpoint")
    up.add_argument("--port", type=int, default=3000, help="the webhook's port on 127.0.0.1 (default 3000)")
    up.add_argument("--aws-port", type=int, default=5000, help="moto's AWS endpoint port (default 5000)")
    up.add_argument("--telegram-port", type=int, default=8081, help="the Telegram stand-in's port (default 8081)")
    up.add_argument("--outbox", default=".local/outbox.jsonl", help="the stand-in's record of every Bot API call")
    up.add_argument("--state", metavar="DIR", help="keep the embedded database in DIR between runs")
    up.add_argument("--database-url", help="a PostgreSQL database to use instead of the embedded one")
    up.add_argument("--polling", action="store_true",
                    help="take updates from Telegram by long polling (needs a real TELEGRAM_BOT_TOKEN)")
    up.add_argument("--verbose", action="store_true", help="show the functions' JSON logs too")
    up.add_argument("--db-port", type=int, default=0,
                    help="the embedded PostgreSQL's TCP port on 127.0.0.1 (default: a free one)")
    up.add_argument("--env-dir", metavar="DIR",
                    help="where local.env and resources.json are written for other terminals "
                         "(default: .expensebot/ in the project)")
    up.add_argument("--schedule-cycle", type=float, default=PLAN_CYCLE_SECONDS, metavar="SECONDS",
                    help="how often the schedules are read from Scheduler and planned "
                         f"(default {PLAN_CYCLE_SECONDS:g})")
    up.set_defaults(func=cmd_local_up)
