"""A throwaway MLflow tracking server for the tests: `mlflow server` on a SQLite store and an
artifact folder in a temporary folder, listening on 127.0.0.1 and a free port; stopped (its
whole process group) at the end.

One worker: with MLflow's default of four, the server takes about 50 s to answer on 2 cores
(each worker imports MLflow anew); with one, about 10 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.postgres import _free_port

MLFLOW = Path(sys.executable).parent / "mlflow"
START_TIMEOUT_S = 120


@dataclass(frozen=True)
class Server:
    """A running server: its tracking URI, the folder its runs' artifacts go to, its log."""

    uri: str
    artifacts: Path
    log: Path


def answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[Server]:
    """A server whose store lives in `folder`, started and answering; stopped afterwards."""
    port = _free_port()
    server = Server(f"http://127.0.0.1:{port}", folder / "artifacts", folder / "server.log")
    command = [
        str(MLFLOW),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root",
        str(server.artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with server.log.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(server.uri):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {server.log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
