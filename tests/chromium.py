"""Debian's Chromium, headless, driven over the DevTools protocol (no WebDriver needed).

The microphone is a WAV file (``--use-file-for-fake-audio-capture``), permission prompts are
answered yes, autoplay is allowed, and each browser gets a fresh profile. Flags follow
/work/.library/env/machines/python.md (no sandbox as root, no GPU, no network chatter).

    async with Chromium.launch(url, mic_wav=path) as page:
        await page.evaluate("document.querySelector('#call').click()", user_gesture=True)
        state = await page.wait_for("window.talk.state === 'connected'", timeout_s=10)
        png = await page.screenshot()
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Chromium", "chromium_binary"]

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # host candidates with real addresses (not mDNS names): aiortc on the same host
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--remote-debugging-port=0", "--window-size=820,900",
]


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.console: list[str] = []

    @classmethod
    @asynccontextmanager
    async def launch(cls, url: str, *, mic_wav: Path) -> AsyncIterator[Chromium]:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium not installed")
        profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        proc = await asyncio.create_subprocess_exec(
            binary, *FLAGS, f"--user-data-dir={profile}",
            f"--use-file-for-fake-audio-capture={mic_wav}%noloop", url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            port = await _devtools_port(profile)
            async with aiohttp.ClientSession() as http:
                target = await _page_target(http, port)
                async with http.ws_connect(target, max_msg_size=64 * 1024 * 1024) as ws:
                    page = cls(ws)
                    await page.call("Runtime.enable")
                    await page.call("Page.enable")
                    yield page
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            shutil.rmtree(profile, ignore_errors=True)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json()
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", "")) for a in args))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str, *, user_gesture: bool = False) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                awaitPromise=True, userGesture=user_gesture)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page error: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, *, timeout_s: float, poll_s: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(poll_s)
        state = await self.evaluate("JSON.stringify(window.talk || null)")
        raise TimeoutError(f"page never reached {expression!r} in {timeout_s} s: {state}")

    async def screenshot(self) -> bytes:
        reply = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(reply["data"])


async def _devtools_port(profile: Path, timeout_s: float = 20.0) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker.exists():
            lines = marker.read_text().splitlines()
            if lines and lines[0].strip().isdigit():
                return int(lines[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


async def _page_target(http: aiohttp.ClientSession, port: int) -> str:
    for _ in range(100):
        async with http.get(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = json.loads(await reply.text())
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium opened no page")
