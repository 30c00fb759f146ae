"""Giving a call actor's freed heap back to the OS between calls.

A call allocates and frees megabytes of native memory (audio frames, WebSocket and HTTP
buffers, ONNX inference in the VAD's threads, Ray's RPC buffers). glibc keeps freed memory in
its arenas, one per thread that allocated it, and returns it to the OS only from the top of
the main heap: a long-lived call actor's RSS then creeps up call after call although the
objects are gone (the soak, docs/resilience.md). ``release_freed_memory`` asks glibc to hand
back every free page of every arena (``malloc_trim(0)``); the call actor calls it when a call
has ended (``CallHost.reset``). It costs milliseconds, between calls, and does nothing where
the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

__all__ = ["release_freed_memory"]

logger = logging.getLogger(__name__)
_UNSET: Any = object()
_trim: Any = _UNSET  # glibc's malloc_trim, or None where there is none


def _malloc_trim() -> Any:
    global _trim
    if _trim is _UNSET:
        _trim = None
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            fn = getattr(libc, "malloc_trim", None) if libc is not None else None
        except OSError:
            fn = None
        if fn is not None:
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
            _trim = fn
    return _trim


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``). True if glibc
    did; False where there is no ``malloc_trim`` or it had nothing to give back."""
    fn = _malloc_trim()
    if fn is None:
        return False
    try:
        return bool(fn(0))
    except Exception as e:  # noqa: BLE001 - never let housekeeping fail a call actor
        logger.warning("malloc_trim failed", extra={"error": f"{type(e).__name__}: {e}"})
        return False
