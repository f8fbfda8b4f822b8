"""A real browser for the report tests: headless Chromium driven over the DevTools protocol (websocket-client).

`render(html, screenshot)` loads a page, waits for it, and returns how many images it has, which of them failed
to load (natural width 0), and every console error or failed resource, after saving a full-page screenshot.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--remote-debugging-port=0", "--window-size=1400,1000"]


def chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class PageCheck:
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    title: str = ""


class _DevTools:
    def __init__(self, url: str) -> None:
        import websocket

        self.socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(json.loads(self.socket.recv()))


def render(html: Path, screenshot: Path, executable: str) -> PageCheck:
    """Open `html` in headless Chromium, save a full-page PNG screenshot, report images and console errors."""
    profile = tempfile.mkdtemp(prefix="unimos-chromium-")
    proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = _devtools_port(proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as answer:
            page = next(t for t in json.load(answer) if t.get("type") == "page")
        tools = _DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=html.resolve().as_uri())
        tools.wait_for("Page.loadEventFired")
        check = PageCheck()
        probe = ("JSON.stringify({n: document.images.length, title: document.title, broken: Array.from("
                 "document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))})")
        result = json.loads(tools.call("Runtime.evaluate", expression=probe)["result"]["value"])
        check.images, check.broken_images, check.title = result["n"], result["broken"], result["title"]
        metrics = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], 16000),
                                "scale": 1})
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        for event in tools.events:
            if event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
                check.console_errors.append(str(event["params"]["args"]))
            if event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error":
                check.console_errors.append(event["params"]["entry"]["text"])
            if event.get("method") == "Runtime.exceptionThrown":
                check.console_errors.append(str(event["params"]["exceptionDetails"].get("text")))
        tools.socket.close()
        return check
    finally:
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if found:
            return int(found.group(1))
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("Chromium did not open its DevTools port")
