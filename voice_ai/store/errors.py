"""Errors of the call store, backups and reports.

    VoiceAIError
    └── StoreError               the database cannot be used for what was asked (exit 1 in the CLI)
        ├── DatabaseMissingError     no database file where the settings point
        ├── DatabaseCorruptError     not a SQLite file, or PRAGMA integrity_check is not "ok"
        ├── SchemaVersionError       written by a newer program than this one
        ├── SchemaMismatchError      tables or columns differ from what the migrations make
        ├── WriterRunningError       restore refused: the store writer has the database open
        └── StoreUnavailableError    the writer actor did not acknowledge before the deadline
"""

from __future__ import annotations

from voice_ai.errors import VoiceAIError

__all__ = [
    "DatabaseCorruptError",
    "DatabaseMissingError",
    "SchemaMismatchError",
    "SchemaVersionError",
    "StoreError",
    "StoreUnavailableError",
    "WriterRunningError",
]


class StoreError(VoiceAIError):
    """The store, a backup or a report could not do what was asked. The message says why."""


class DatabaseMissingError(StoreError):
    """There is no database file at the configured path."""


class DatabaseCorruptError(StoreError):
    """The file is not a SQLite database, or its integrity check failed."""


class SchemaVersionError(StoreError):
    """The database schema is newer than the migrations this program knows."""


class StoreUnavailableError(StoreError):
    """The store writer did not acknowledge a record before the client's deadline."""


class SchemaMismatchError(StoreError):
    """The database's tables or columns are not the call store's (e.g. ``calls`` is a view)."""


class WriterRunningError(StoreError):
    """A store writer has the live database open; stop the application before restoring."""
