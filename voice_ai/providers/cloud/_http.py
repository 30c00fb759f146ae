"""HTTP sessions for the cloud engines, honouring ENABLE_CONNECTION_POOLING."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

import aiohttp

__all__ = ["SessionSource", "within"]

T = TypeVar("T")


class SessionSource:
    """One shared ``aiohttp.ClientSession`` when pooled, else a fresh one per request."""

    def __init__(self, *, pooled: bool) -> None:
        self.pooled = pooled
        self._shared: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[aiohttp.ClientSession]:
        if self.pooled:
            if self._shared is None or self._shared.closed:
                self._shared = aiohttp.ClientSession()
            yield self._shared
            return
        async with aiohttp.ClientSession() as fresh:
            yield fresh

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.close()
            self._shared = None


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``awaitable``'s result, or ``TimeoutError`` after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        return await awaitable
