"""Starting, waiting for and stopping the real servers the tests talk to."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import VENV_BIN, free_port


def wait_http(url: str, proc: subprocess.Popen[bytes], *, timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail early with the log's tail if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Terminate ``proc``, killing it if it does not exit in ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ChromaServer:
    """A real ``chroma run`` on a free 127.0.0.1 port, storing under ``path``; tests may kill it."""

    def __init__(self, path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path = path / "chroma.log"
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "chroma"),
                *("run", "--path", str(path / "db")),
                *("--host", "127.0.0.1", "--port", str(self.port)),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        try:
            wait_http(f"{self.url}/api/v2/heartbeat", self.proc, timeout=60, log=log_path)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop(self.proc, timeout=10)
        self.log.close()

    def __enter__(self) -> ChromaServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
