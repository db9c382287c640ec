"""Applies the SQL files of infra/migrations in order, each once; the pending ones in one transaction,
so a failed file leaves the schema as it was."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from expensebot.adapters.database import Database

MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Two deploys (or a deploy and a test run) migrating at once wait for each other on this lock.
ADVISORY_LOCK_KEY = 7_226_113


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path


def discover(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.iterdir()):
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append(Migration(version=path.stem, path=path))
        elif path.suffix == ".sql":
            raise ValueError(f"{path.name}: migration files are named NNNN_snake_case.sql")
    return found


def apply_migrations(db: Database, directory: Path, *, default_currency: str = "RUB") -> list[str]:
    """Returns the versions applied by this call (empty when the schema was already current).
    `default_currency` is the currency of what was stored before amounts had one (0009 reads it)."""
    migrations = discover(directory)
    applied_now: list[str] = []
    with db.transaction() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        cur.execute("SELECT set_config('expensebot.default_currency', %s, true)", (default_currency,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in cur.fetchall()}
        for migration in migrations:
            if migration.version in done:
                continue
            cur.execute(migration.path.read_text(encoding="utf-8"))
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,))
            applied_now.append(migration.version)
    return applied_now


def pending(db: Database, directory: Path) -> list[str]:
    with db.transaction() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
        if not cur.fetchone()["present"]:
            return [m.version for m in discover(directory)]
        cur.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in cur.fetchall()}
    return [m.version for m in discover(directory) if m.version not in done]
