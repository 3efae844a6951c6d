"""A person watching the player page, as the tests drive one: headless Chromium behind
watch.cjs, one JSON request and answer per line, the node process stopped by its PID."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

WATCHER = Path(__file__).parent / "watch.cjs"
EXIT_SECONDS = 30


class ViewerError(AssertionError):
    """The page did not get where a request waited for it to get."""


class Viewer:
    """One browser page; each method waits (with its own deadline) in the browser."""

    def __init__(self, packages: Path, chromium: str, log: Path) -> None:
        self.log = log
        self._errors = log.open("w")
        settings = {"packages": str(packages), "chromium": chromium}
        self.process = subprocess.Popen(
            ["node", str(WATCHER), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        self.page_errors: list[str] = []
        self._answer()  # "ready"

    def _answer(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=EXIT_SECONDS)
            raise ViewerError(f"the viewer exited {self.process.returncode}: {self._log()}")
        answer = json.loads(line)
        self.page_errors = answer.get("pageErrors", [])
        if not answer["ok"]:
            raise ViewerError(
                f"{answer['error']}\npage shows: {answer.get('shown')}\n"
                f"page errors: {self.page_errors}\nconsole: {answer.get('console')}"
            )
        return answer["value"]

    def _log(self) -> str:
        self._errors.flush()
        return self.log.read_text()[-3000:]

    def request(self, op: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def open(self, url: str, headers: dict[str, str] | None = None) -> int:
        """Navigate; the page's HTTP status."""
        return int(self.request("open", url=url, headers=headers or {}))

    def state(self, *states: str, seconds: float = 30) -> dict[str, Any]:
        """Wait until the page's replay state is one of `states`."""
        return dict(self.request("state", states=list(states), seconds=seconds))

    def time(self, least: int, seconds: float = 60) -> int:
        """Wait until the page's replay time reaches `least` ms."""
        return int(self.request("time", min=least, seconds=seconds))

    def text(self, text: str, seconds: float) -> int:
        """Wait until the replayed page shows `text`; the ms it took."""
        return int(self.request("text", text=text, seconds=seconds))

    def count(self, selector: str) -> int:
        return int(self.request("count", selector=selector))

    def texts(self, selector: str) -> list[str]:
        return list(self.request("texts", selector=selector))

    def screenshot(self, path: Path) -> Path:
        self.request("screenshot", path=str(path))
        return path

    def close(self) -> None:
        """Close its stdin (it closes the browser); else terminate, then kill, by PID."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        for stop in (None, self.process.terminate, self.process.kill):
            if stop is not None:
                stop()
            try:
                self.process.wait(timeout=EXIT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
        self._errors.close()
