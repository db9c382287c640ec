"""JSON-lines files as the tools read them (Telegram updates and faults for `simulate`, EMF metric lines for
`ops dashboard`): blank lines skipped, a broken line named by its number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def json_lines(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    """(where, value) for each non-blank line; `where` is `"<label>, line N"` for the caller's own errors.
    An unreadable file or a line that is not JSON is a ValueError saying which."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{label}: cannot read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{label}, line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON: {exc.msg}") from None
