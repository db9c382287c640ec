"""JSON-lines files as the tools read them (Telegram updates and faults for `simulate`, EMF metric lines for
`ops dashboard`): blank lines skipped, a broken line named by its number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def json_lines(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    """(where, value) for each non-blank line; `where` is `"<label>, line N"` for the caller's own errors.
    A line that is not JSON, or a file that is not UTF-8, is a ValueError saying which; a file that cannot be
    opened is the OSError itself (FileNotFoundError included), for the caller to say how to make one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label}: not UTF-8 text: {exc.reason}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{label}, line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON: {exc.msg}") from None
