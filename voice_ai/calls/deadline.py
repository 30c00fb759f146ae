"""A deadline on every wait that crosses a process: ``within(awaitable, timeout_s, what)``.

A stuck actor must never hold a call, an admission slot or an HTTP request for ever. Every
cross-actor wait on the call path goes through ``within``, which cancels the wait after
``timeout_s`` and raises ``DeadlineExceeded`` naming what did not answer, so the log line and
the call record say which component was stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["DeadlineExceeded", "within"]

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """``what`` did not answer within ``timeout_s`` seconds."""

    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"{what} did not answer within {timeout_s:g} s")
        self.what = what
        self.timeout_s = timeout_s

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.what, self.timeout_s))


async def within(awaitable: Awaitable[T], timeout_s: float, what: str) -> T:
    """Await ``awaitable`` (a coroutine, future or Ray ``ObjectRef``) for at most ``timeout_s``.

    Raises ``DeadlineExceeded`` (a ``TimeoutError``) on expiry; other errors pass through.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0 for {what}, got {timeout_s}")
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise DeadlineExceeded(what, timeout_s) from None
        raise  # the awaited thing's own timeout (e.g. a nested ``within``): keep its message
