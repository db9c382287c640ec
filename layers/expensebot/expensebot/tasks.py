"""Tasks, as Celery had them: a registry of named units of work (`reports.send_monthly_report`), each
bound to one queue, with `.delay()` to enqueue. A message on a queue is a TaskMessage envelope; a worker
looks the task up by name, validates the arguments against the task's model, and runs it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from expensebot.adapters.queues import OutgoingMessage
from expensebot.bootstrap import Runtime, get_runtime
from expensebot.config import QUEUE_NAMES
from expensebot.errors import InvalidMessage

ArgsT = TypeVar("ArgsT", bound=BaseModel)


class TaskMessage(BaseModel):
    """The body of every SQS message the application sends."""

    model_config = ConfigDict(extra="forbid")

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

    def run(self, runtime: Runtime, raw_args: dict[str, Any]) -> Any:
        try:
            args = self.args_model.model_validate(raw_args)
        except ValidationError as exc:
            raise InvalidMessage(f"{self.name}: invalid arguments: {_brief(exc)}") from exc
        return self.run_fn(runtime, args)


_REGISTRY: dict[str, Task[Any]] = {}


def task(
    name: str, *, args: type[ArgsT], job: str | None = None
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
        return TaskMessage.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage(f"not a task message: {_brief(exc)}") from exc


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
