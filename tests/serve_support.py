"""Helpers of the HTTP service tests: index copies, keys, UBI records, a real server process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shopsearch.serve.keys import KeyFile


def copy_index(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def create_keys(index: Path) -> dict[str, str]:
    """One key per scope, plus admin: {"search": key, "events": key, "admin": key}."""
    keys = KeyFile(index)
    return {scope: keys.create(f"{scope}-key", scopes=[scope]) for scope in SCOPE_NAMES}


SCOPE_NAMES = ("search", "events", "admin")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def query_record(query_id: str, text: str = "ugg slippers", client: str = "u1") -> dict:
    return {
        "query_id": query_id,
        "client_id": client,
        "session_id": "s1",
        "user_query": text,
        "timestamp": "2026-11-28T10:00:00Z",
    }


def event_record(query_id: str, object_id: str, action: str = "click", client: str = "u1") -> dict:
    return {
        "action_name": action,
        "query_id": query_id,
        "client_id": client,
        "session_id": "s1",
        "timestamp": "2026-11-28T10:00:05Z",
        "event_attributes": {"object": {"object_id": object_id}, "position": {"ordinal": 1}},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``shopsearch serve DIR [ARGS]`` in a subprocess (its own process group: the parent
    and its workers), on a free port."""

    def __init__(
        self,
        index: Path,
        log: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "shopsearch", "serve", str(index), *args]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0, workers: int = 1) -> None:
        """Until ``/healthz`` answers (and every worker has started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    if self.log_path.read_text().count('"message": "serving"') >= workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the server did not start: {self.log_path.read_text()[-3000:]}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill_group(self) -> None:
        """SIGKILL to the parent and every worker at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        """SIGTERM (the parent then removes its shared directory), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind, if any
        except ProcessLookupError:
            pass
        self._log.close()
