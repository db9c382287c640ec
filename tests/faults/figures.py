"""One scenario's figures, collected for the table the suite prints at its end."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    """What one scenario cost: faults injected, and what users saw (messages and expenses)."""

    scenario: str
    faults: int = 0
    expected: int = 0
    lost: int = 0
    duplicated: int = 0
    documented_duplicates: int = 0  # sends Telegram accepted before the worker could confirm them
    answers_5xx: int = 0
    notes: list[str] = field(default_factory=list)


RESULTS: list[Figures] = []
