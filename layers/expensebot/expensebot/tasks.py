"""Tasks, as Celery had them: a registry of named units of work (`reports.send_monthly_report`), each
bound to one queue, with `.delay()` to enqueue. A message on a queue is a TaskMessage envelope; a worker
looks the task up by name, validates the arguments against the task's model, and runs it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from expensebot.adapters.queues import QUEUE_NAMES, OutgoingMessage
from expensebot.bootstrap import Runtime, get_runtime
from expensebot.errors import InvalidMessage

ArgsT = TypeVar("ArgsT", bound=BaseModel)


class TaskMessage(BaseModel):
    """The body of every SQS message the application sends.

    `id` is made once, at enqueue, and travels in the body, so every delivery of the message (SQS
    redeliveries, a copy held back and re-sent, a DLQ redrive) carries the same one: a task may key its
    effect on it. A body that came without one (sent by hand) is given one derived from the body itself
    (`parse_message`), never a fresh one per delivery."""

    # Built at first use, not at import: the validator is most of a model's cost, and it counts in every cold
    # start's import (`expensebot dev import-times`).
    model_config = ConfigDict(extra="forbid", defer_build=True)

    task: str
    args: dict[str, Any] = Field(default_factory=dict)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    enqueued_at: AwareDatetime | None = None
    job_run_id: int | None = None


@dataclass(frozen=True)
class Task(Generic[ArgsT]):
    name: str
    queue: str
    args_model: type[ArgsT]
    run_fn: Callable[[Runtime, ArgsT], Any]
    description: str
    job: str | None = None
    # The kinds of message (notifications.kind) the task sends, so `ops history --task/--job` finds them.
    sends: tuple[str, ...] = ()

    def message(self, args: ArgsT, *, at: datetime | None, job_run_id: int | None = None) -> TaskMessage:
        """The envelope that carries one unit of this task on its queue."""
        return TaskMessage(task=self.name, args=args.model_dump(mode="json"), enqueued_at=at, job_run_id=job_run_id)

    def delay(self, args: ArgsT, *, runtime: Runtime | None = None, delay_seconds: int = 0) -> str:
        """Enqueue one unit; returns the message id."""
        return self._enqueue([args], runtime=runtime, delay_seconds=delay_seconds)[0]

    def delay_many(
        self, many: Iterable[ArgsT], *, runtime: Runtime | None = None, job_run_id: int | None = None
    ) -> int:
        """Enqueue many units with SendMessageBatch, ten to a call; returns how many were sent."""
        return len(self._enqueue(many, runtime=runtime, job_run_id=job_run_id))

    def _enqueue(
        self, many: Iterable[ArgsT], *, runtime: Runtime | None, job_run_id: int | None = None,
        delay_seconds: int = 0,
    ) -> list[str]:
        runtime = runtime or get_runtime()
        now = runtime.clock.now()
        messages = [self.message(args, at=now, job_run_id=job_run_id) for args in many]
        if messages:
            runtime.queues.send(
                self.queue, [OutgoingMessage(m.model_dump_json(), delay_seconds=delay_seconds) for m in messages]
            )
        return [m.id for m in messages]

    def run(self, runtime: Runtime, raw_args: dict[str, Any], *, message_id: str | None = None) -> Any:
        """Validates the arguments and runs the task. The message's id goes to the validation as context,
        so a model whose arguments may lack a key of their own takes the message's (DebugRequest) instead
        of making one up at delivery, which every redelivery would do differently."""
        try:
            args = self.args_model.model_validate(raw_args, context={"message_id": message_id})
        except ValidationError as exc:
            raise InvalidMessage(f"{self.name}: invalid arguments: {_brief(exc)}") from exc
        return self.run_fn(runtime, args)


_REGISTRY: dict[str, Task[Any]] = {}


def task(
    name: str, *, args: type[ArgsT], job: str | None = None, sends: tuple[str, ...] = ()
) -> Callable[[Callable[[Runtime, ArgsT], Any]], Task[ArgsT]]:
    """Register a task. Its queue is the first part of its name, as the Celery routes had it."""
    queue = name.split(".", 1)[0]
    if queue not in QUEUE_NAMES:
        raise ValueError(f"task {name!r}: its name must start with a queue ({', '.join(QUEUE_NAMES)})")

    def register(fn: Callable[[Runtime, ArgsT], Any]) -> Task[ArgsT]:
        if name in _REGISTRY:
            raise ValueError(f"task {name!r} is registered twice")
        registered = Task(
            name=name,
            queue=queue,
            args_model=args,
            run_fn=fn,
            description=next(iter((fn.__doc__ or "").strip().splitlines()), ""),
            job=job,
            sends=sends,
        )
        _REGISTRY[name] = registered
        return registered

    return register


def registry() -> dict[str, Task[Any]]:
    """Every task, by name. Importing the jobs package registers them (Celery's autodiscover_tasks())."""
    import expensebot.jobs  # noqa: F401

    return _REGISTRY


def parse_message(body: str) -> TaskMessage:
    try:
        message = TaskMessage.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage(f"not a task message: {_brief(exc)}") from exc
    if "id" not in message.model_fields_set:
        # The field's default would differ on each delivery of this body; its digest is the same on all of
        # them and on every copy of it (SQS keeps a body byte for byte). Two bodies sent by hand that are
        # identical are therefore one message: give each its own "id" to have both run.
        message = message.model_copy(update={"id": body_digest(body)})
    return message


def body_digest(body: str) -> str:
    """The id of a message that came without one: a digest of its body, as long as a uuid's hex."""
    return "body-" + hashlib.sha256(body.encode()).hexdigest()[:32]


def lookup(name: str) -> Task[Any]:
    tasks = registry()
    if name not in tasks:
        # The seed's "Received unregistered task": say which tasks this code knows.
        raise InvalidMessage(f"unregistered task {name!r}; known tasks: {', '.join(sorted(tasks))}")
    return tasks[name]


def _brief(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()[:5]
    )
