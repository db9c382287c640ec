"""Telegram's limits: message, caption, callback-data and upload sizes, and the rate limiter behind 429 ``retry_after``.

The limiter models Telegram's send limits (by the stand-in's defaults 30
messages a second per bot, one a second per private chat, 20 a minute per group,
and the faster paid broadcast) as sliding windows driven by the stand-in's clock, so tests can
advance virtual time by hand. It holds no lock of its own: the stand-in calls it
under its lock, which makes "check the limit, then consume it" atomic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

MAX_MESSAGE_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
# https://core.telegram.org/bots/api#sendphoto and #senddocument: what a bot may upload.
MAX_CAPTION_LENGTH = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES_SUM = 10000  # width + height
MAX_PHOTO_RATIO = 20  # the longer side over the shorter
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024


def _window_for(rate: float) -> tuple[timedelta, int]:
    """Model "rate per second" as "at most N sends in any window of T seconds".

    For rate >= 1 this is N = floor(rate) per 1 s; slower rates widen the
    window so that e.g. 0.5/s becomes 1 send per 2 s instead of never.
    """
    seconds = max(1.0, 1.0 / rate) if rate > 0 else 1.0
    allowed = max(1, math.floor(rate * seconds + 1e-9))
    return timedelta(seconds=seconds), allowed


class RateLimiter:
    """Sliding-window limiter; callers hold the stand-in's lock.

    Paid and ordinary sends share one log of global sends: a paid send is only
    measured against ``paid_rate``, but it still counts against the ordinary
    budget, so ordinary sends stall while a paid burst is in flight.
    """

    def __init__(self, global_rate: float, paid_rate: float, per_chat_interval: float, group_per_minute: int) -> None:
        self._normal = _window_for(global_rate)
        self._paid = _window_for(paid_rate)
        self._chat_interval = timedelta(seconds=per_chat_interval)
        self._group_window = timedelta(minutes=1)
        self._group_allowed = max(1, group_per_minute)
        self.clear()

    def clear(self) -> None:
        self._global: deque[datetime] = deque()
        self._last_private: dict[int, datetime] = {}
        self._group: dict[int, deque[datetime]] = {}

    @staticmethod
    def _wait_in_window(sends: Iterable[datetime], now: datetime, window: timedelta, allowed: int) -> float:
        recent = [at for at in sends if at > now - window]
        if len(recent) < allowed:
            return 0.0
        # The send that has to leave the window before one more fits.
        return (recent[len(recent) - allowed] + window - now).total_seconds()

    def wait_seconds(self, chat_id: int, paid: bool, now: datetime) -> float:
        window, allowed = self._paid if paid else self._normal
        waits = [self._wait_in_window(self._global, now, window, allowed)]
        if chat_id < 0:
            waits.append(
                self._wait_in_window(self._group.get(chat_id, ()), now, self._group_window, self._group_allowed)
            )
        elif chat_id in self._last_private:
            waits.append((self._last_private[chat_id] + self._chat_interval - now).total_seconds())
        return max(waits)

    def consume(self, chat_id: int, now: datetime) -> None:
        self._global.append(now)
        horizon = max(self._normal[0], self._paid[0])
        while self._global and self._global[0] <= now - horizon:
            self._global.popleft()
        if chat_id < 0:
            sends = self._group.setdefault(chat_id, deque())
            sends.append(now)
            while sends and sends[0] <= now - self._group_window:
                sends.popleft()
        else:
            self._last_private[chat_id] = now
