"""The functions' metrics on the local stack: Powertools Metrics prints each flush as one CloudWatch Embedded
Metric Format line on stdout, which Lambda's log agent would hand to CloudWatch. Locally those lines are
taken out of stdout and appended to a JSON-lines file (`simulate --metrics FILE`, `local up` into
`.expensebot/metrics.jsonl`), which `ops dashboard --from-emf FILE` draws.

Powertools prints only while POWERTOOLS_METRICS_DISABLED is not "true" (the local stack sets it to "true"
unless told otherwise): a caller that captures sets it to "false" for the functions' environment."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from expensebot_tools.project.emf import is_emf


def append_emf_lines(path: Path, records: Iterable[dict[str, Any] | str]) -> int:
    """Appends EMF records (dicts, or JSON lines as printed) to the file, one line each; lines that are not
    EMF are left out. Returns how many were written. Safe to call from several threads of one process."""
    lines = []
    for record in records:
        parsed = json.loads(record) if isinstance(record, str) else record
        if is_emf(parsed):
            lines.append(json.dumps(parsed, separators=(",", ":"), ensure_ascii=False) + "\n")
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _APPEND_LOCK, path.open("a", encoding="utf-8") as out:
            out.writelines(lines)
    return len(lines)


_APPEND_LOCK = threading.Lock()


class _EmfSplitter(io.TextIOBase):
    """Stands in for sys.stdout: complete lines that are EMF go to the file, everything else to `passthrough`."""

    def __init__(self, path: Path, passthrough: TextIO, clock: Callable[[], datetime] | None) -> None:
        self._path = path
        self._passthrough = passthrough
        self._clock = clock
        self._pending = ""
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *complete, self._pending = self._pending.split("\n")
        for line in complete:
            self._route(line)
        return len(text)

    def _route(self, line: str) -> None:
        record: Any = None
        if line.startswith("{") and '"_aws"' in line:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
        if not is_emf(record):
            self._passthrough.write(line + "\n")
            return
        if self._clock is not None:
            # Powertools stamps the wall clock; on a virtual clock the metric happened at the virtual time.
            record["_aws"]["Timestamp"] = int(self._clock().timestamp() * 1000)
        self.lines += append_emf_lines(self._path, [record])

    def flush(self) -> None:
        self._passthrough.flush()

    def close_pending(self) -> None:
        if self._pending:
            self._route(self._pending)
            self._pending = ""


@contextmanager
def captured_metrics(path: Path, *, clock: Callable[[], datetime] | None = None) -> Iterator[_EmfSplitter]:
    """For the block, every EMF line printed on stdout is appended to `path` instead (stamped with `clock`'s
    time when given, for a virtual clock); other output goes on to stdout as before."""
    original = sys.stdout
    splitter = _EmfSplitter(path, original, clock)
    sys.stdout = splitter  # type: ignore[assignment]
    try:
        yield splitter
    finally:
        splitter.close_pending()
        sys.stdout = original
