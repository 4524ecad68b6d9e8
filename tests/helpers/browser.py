"""A page opened in headless Chromium (Debian's `chromium`; .ci/run installs it): the DOM after
its scripts ran, what its console printed, and a screenshot.

The browser runs with no network: every host resolves to nothing, so a page that tried to load
anything from outside would show it in the console (and the report's own policy forbids it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",  # as root in a container
    "--disable-gpu",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no host resolves: no network
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def available() -> str | None:
    """Why no page can be opened here, or None."""
    if chromium() is None:
        return "Chromium is not installed (.ci/run installs Debian's chromium)"
    return None


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]


def _run(args: list[str], profile: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": profile},
    )


def render(page: Path, fragment: str = "", screenshot: Path | None = None) -> Rendered:
    """`page` (with `#fragment`) after its scripts ran, and its screenshot when asked for."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory() as profile:
        shown = _run(["--dump-dom", url], profile)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _run(["--window-size=1400,2200", f"--screenshot={screenshot}", url], profile)
    console = [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(shown.stdout, console)
