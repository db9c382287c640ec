"""debug_task, kept from the seed: a task any operator can enqueue on the default queue to check the
pipeline end to end (SQS → worker → database → Telegram). It logs what it received and how long it
waited in the queue, and with a chat_id it sends a message there, so a person sees the whole path work.

Its answer is keyed `debug:<request_id>`; a request without one takes the id of the message that carries
it, which is the same on every delivery of that message, so a duplicate delivery answers once."""

from __future__ import annotations

from typing import Self

from pydantic import AwareDatetime, BaseModel, Field, ValidationInfo, model_validator

from expensebot.bootstrap import Runtime
from expensebot.delivery import OutboundMessage, deliver
from expensebot.errors import InvalidMessage
from expensebot.observability import logger, metrics
from expensebot.tasks import task
from expensebot.texts import t


class DebugRequest(BaseModel):
    note: str = Field("", max_length=500)
    chat_id: int | None = None  # where to say that the pipeline works; none: only the log line
    requested_at: AwareDatetime | None = None
    # Never a default made here: the worker validates the arguments on every delivery, and a fresh id per
    # delivery was a fresh dedupe key per delivery (a duplicate delivery answered twice).
    request_id: str | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _keyed_by_its_message(self, info: ValidationInfo) -> Self:
        message_id = (info.context or {}).get("message_id")
        if self.request_id is None and message_id:
            self.request_id = message_id
        return self


KIND = "debug"  # notifications.kind of the answer


@task("default.debug_task", args=DebugRequest, sends=(KIND,))
def debug_task(runtime: Runtime, request: DebugRequest) -> dict[str, object]:
    """Check the pipeline end to end: log the request, and answer in a chat when one is given."""
    ran_at = runtime.clock.now()
    lag = (ran_at - request.requested_at).total_seconds() if request.requested_at else None
    logger.info("debug_task", extra={"request": request.model_dump(mode="json"), "queue_lag_seconds": lag})
    metrics.add_metric(name="DebugTasks", unit="Count", value=1)
    outcome: dict[str, object] = {"request_id": request.request_id, "ran_at": ran_at.isoformat(), "lag_seconds": lag}
    if request.chat_id is not None:
        if request.request_id is None:  # run outside a worker, with neither key: nothing to dedupe on
            raise InvalidMessage("default.debug_task: a request_id is needed to answer in a chat")
        tz = runtime.settings.tz
        text = t(
            "ru",
            "debug_task_reply",
            requested_at=request.requested_at.astimezone(tz).strftime("%H:%M:%S") if request.requested_at else "?",
            ran_at=ran_at.astimezone(tz).strftime("%H:%M:%S"),
            lag=f"{lag:.1f}" if lag is not None else "?",
            note=request.note,
        ).strip()
        delivery = deliver(
            runtime,
            OutboundMessage(dedupe_key=f"debug:{request.request_id}", kind=KIND, chat_id=request.chat_id, text=text),
        )
        outcome["delivery"] = delivery.value
    return outcome
