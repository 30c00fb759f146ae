"""Errors of the call store, backups and reports.

    VoiceAIError
    └── StoreError               the database cannot be used for what was asked (exit 1 in the CLI)
        ├── DatabaseMissingError     no database file where the settings point
        ├── DatabaseCorruptError     not a SQLite file, or PRAGMA integrity_check is not "ok"
        ├── SchemaVersionError       written by a newer program than this one
        └── StoreUnavailableError    the writer actor did not acknowledge before the deadline
"""

from __future__ import annotations

from voice_ai.errors import VoiceAIError

__all__ = [
    "DatabaseCorruptError",
    "DatabaseMissingError",
    "SchemaVersionError",
    "StoreError",
    "StoreUnavailableError",
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
