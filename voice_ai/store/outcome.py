"""What one write to the store came to, as a value that crosses a process unchanged.

The writer never lets a store problem escape as an exception (it would kill the caller's
task, and with it the record): it answers a ``WriteOutcome`` naming the problem, and the
client (``voice_ai.store.durable.DurableRecords``) retries within a bound, then spools.

    StoreProblem.LOCKED       "database is locked" (a VACUUM, a backup, another writer)
    StoreProblem.DISK_FULL    no space (or an I/O error) on the store's filesystem
    StoreProblem.SCHEMA       the file is not the schema this program writes (a bad restore)
    StoreProblem.UNAVAILABLE  the writer process did not answer in time
    StoreProblem.OTHER        anything else SQLite refused
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from enum import StrEnum

from voice_ai.store.errors import StoreError, StoreUnavailableError

__all__ = ["StoreProblem", "WriteOutcome", "classify_store_error"]


class StoreProblem(StrEnum):
    LOCKED = "locked"
    DISK_FULL = "disk_full"
    SCHEMA = "schema"
    UNAVAILABLE = "unavailable"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    ok: bool
    inserted: bool = False  # ok and new (False: the call id was already stored)
    problem: StoreProblem | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.ok == (self.problem is not None):
            raise ValueError("a WriteOutcome is ok with no problem, or failed with one")

    @classmethod
    def stored(cls, inserted: bool) -> WriteOutcome:
        return cls(ok=True, inserted=inserted)

    @classmethod
    def failed(cls, problem: StoreProblem, detail: str) -> WriteOutcome:
        return cls(ok=False, problem=problem, detail=detail)


_SCHEMA_HINTS = ("no such table", "no such column", "has no column", "is a view",
                 "may not be modified", "cannot modify", "no such view")


def classify_store_error(error: BaseException) -> StoreProblem:
    """Which problem an exception from the write path is (see the module docstring)."""
    if isinstance(error, StoreUnavailableError):
        return StoreProblem.UNAVAILABLE
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreProblem.DISK_FULL
    if isinstance(error, StoreError):  # corrupt, missing, wrong schema version or shape
        return StoreProblem.SCHEMA
    if isinstance(error, sqlite3.Error):
        name = getattr(error, "sqlite_errorname", "") or ""
        text = str(error).lower()
        if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in text:
            return StoreProblem.LOCKED
        if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR") or "disk is full" in text:
            return StoreProblem.DISK_FULL
        if any(h in text for h in _SCHEMA_HINTS) or name in ("SQLITE_NOTADB", "SQLITE_CORRUPT",
                                                             "SQLITE_SCHEMA"):
            return StoreProblem.SCHEMA
    return StoreProblem.OTHER
