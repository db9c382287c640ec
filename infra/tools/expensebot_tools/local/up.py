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
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from expensebot_tools.local.stack import (
    LOCAL_BOT_TOKEN,
    LOCAL_WEBHOOK_SECRET,
    EmbeddedPostgres,
    LocalSystem,
    environment,
    migrate_database,
    running_system,
)
from expensebot_tools.project.template import Template

TELEGRAM_API = "https://api.telegram.org"
PLAN_AHEAD = timedelta(minutes=10)  # how far ahead the schedules' fire times are computed at a time
IDLE_POLL_SECONDS = 0.5  # a worker's pause after an empty receive
LONG_POLL_SECONDS = 5  # getUpdates timeout: short, so Ctrl-C is answered within seconds
JOB_RETRIES = 2
Result = TypeVar("Result")


class Invoker:
    """Runs every function invocation on one thread, one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="invoker")

    def call(self, function: Callable[[], Result]) -> Result:
        return self._pool.submit(function).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class LocalStack:
    """The running parts; `stop` (an Event) ends every loop."""

    def __init__(self, system: LocalSystem, invoker: Invoker, zone_name: str, log: Callable[[str], None]) -> None:
        self.system = system
        self.invoker = invoker
        self.zone_name = zone_name
        self.stop = threading.Event()
        self.log = log
        self.threads: list[threading.Thread] = []

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

    # ------------------------------------------------------------------ webhook

    def post_update(self, update: dict[str, Any] | str, secret: str | None) -> dict[str, Any]:
        from expensebot_tools.local.events import api_gateway_event

        event = api_gateway_event(update, secret=secret)
        return self.invoker.call(lambda: self.system.invoke(LocalSystem.WEBHOOK_FUNCTION, event))

    # ---------------------------------------------------------------- schedules

    def run_schedules(self) -> None:
        from expensebot_tools.local.simulate import plan_schedules

        cursor = datetime.now(UTC)
        while not self.stop.is_set():
            until = cursor + PLAN_AHEAD
            for happening in sorted(plan_schedules(self.system.template, self.zone_name, cursor, until),
                                    key=lambda h: h.at):
                if self.stop.wait(max(0.0, (happening.at - datetime.now(UTC)).total_seconds())):
                    return
                self.fire(happening.function_id, happening.at)
            if self.stop.wait(max(0.0, (until - datetime.now(UTC)).total_seconds())):
                return
            cursor = until

    def fire(self, function_id: str, at: datetime) -> None:
        error = ""
        for _ in range(1 + JOB_RETRIES):
            try:
                outcome = self.invoker.call(lambda: self.system.fire_schedule(function_id, at))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            summary = ", ".join(f"{k} {v}" for k, v in (outcome or {}).items() if k in ("status", "planned",
                                                                                       "enqueued"))
            self.log(f"{function_id} fired for {at.astimezone(ZoneInfo(self.zone_name)):%H:%M}: {summary}")
            return
        self.log(f"{function_id} failed {1 + JOB_RETRIES} times for {at.isoformat()}: {error}")

    # ------------------------------------------------------------------ workers

    def run_worker(self, queue_id: str, batch_size: int) -> None:
        system = self.system
        while not self.stop.is_set():
            received = system.receive_raw(queue_id, max_messages=min(10, batch_size))
            if not received:
                self.stop.wait(IDLE_POLL_SECONDS)
                continue
            try:
                response = self.invoker.call(partial(system.invoke_worker, queue_id, received))
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


class TelegramCallError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code


def telegram_call(token: str, method: str, params: dict[str, Any], *, timeout: float) -> Any:
    request = urllib.request.Request(f"{TELEGRAM_API}/bot{token}/{method}", data=json.dumps(params).encode(),
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
    for option, port in (("--port", args.port), ("--aws-port", args.aws_port), ("--telegram-port", args.telegram_port)):
        if port and not _port_free(port):
            print(f"expensebot local up: 127.0.0.1:{port} is in use; choose another with {option}", file=sys.stderr)
            return 2
    state = Path(args.state) if args.state else None
    outbox = Path(args.outbox)
    quiet = {"POWERTOOLS_SERVICE_NAME": "expensebot", "POWERTOOLS_METRICS_NAMESPACE": "ExpenseBot",
             "POWERTOOLS_METRICS_DISABLED": "true",
             "POWERTOOLS_LOG_LEVEL": "INFO" if args.verbose else os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING")}
    fake_aws = {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                "AWS_DEFAULT_REGION": "us-east-1"}
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

    def log(text: str) -> None:
        print(f"{datetime.now(ZoneInfo(zone_name)):%H:%M:%S} {text}", flush=True)

    with ExitStack() as stack:
        stack.enter_context(environment({**quiet, **fake_aws}))
        endpoint = stack.enter_context(moto_server(args.aws_port))
        stack.enter_context(environment({"AWS_ENDPOINT_URL": endpoint}))
        from expensebot.clock import SystemClock
        from expensebot.observability import logger
        from expensebot_tools.local.telegram import TelegramStandIn

        logger.setLevel(quiet["POWERTOOLS_LOG_LEVEL"])
        postgres = EmbeddedPostgres(state / "postgres" if state is not None else None)
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
        system = stack.enter_context(running_system(
            template=template, database_url=url, telegram=telegram, clock=SystemClock(),
            parameters={**parameters_from_environment(template), "TimeZone": zone_name}))
        invoker = Invoker()
        stack.callback(invoker.close)
        local = LocalStack(system, invoker, zone_name, log)
        server = webhook_server(local, args.port)
        stack.callback(server.server_close)
        secret = os.environ.get("WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET)
        _print_addresses(server, endpoint, telegram, outbox, system, zone_name, secret, args.polling)
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
                     zone_name: str, secret: str, polling: bool) -> None:
    host, port = server.server_address[:2]
    lines = [f"expensebot local up ({zone_name}), real time; Ctrl-C stops it."]
    if polling:
        lines.append(f"  updates:   getUpdates long polling from {TELEGRAM_API} (the local webhook stays up too)")
    lines += [
        f"  webhook:   POST http://{host!s}:{port}/webhook  (header X-Telegram-Bot-Api-Secret-Token: {secret})",
        f"  AWS:       AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION=us-east-1 "
        "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
        f"  Telegram:  {telegram.base_url}" + ("" if polling else f"  (stand-in; every call in {outbox})"),
        "  queues:    " + ", ".join(url.rsplit("/", 1)[1] for url in system.queues.urls.values()),
        "  schedules: " + ", ".join(f"{s.function_id} {s.expression}" for s in system.template.schedules()),
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
    up.set_defaults(func=cmd_local_up)
