"""The call store: SQLite records of calls, turns and events; backups, maintenance, reports.

Pure Python and ``sqlite3``; the Ray shell that owns the one writer is
``actors/store_writer.py``. See ``docs/operations.md`` for the commands built on this package.
"""

from voice_ai.store.call_store import CallStore, EventKind
from voice_ai.store.errors import (
    DatabaseCorruptError,
    DatabaseMissingError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from voice_ai.store.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "CallStore",
    "DatabaseCorruptError",
    "DatabaseMissingError",
    "EventKind",
    "SchemaVersionError",
    "StoreError",
    "StoreUnavailableError",
]
