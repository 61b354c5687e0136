"""The real `airlock serve` process: it starts on a fresh folder, becomes ready, prints where
to go, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from airlock.config import Settings
from airlock.services.controller import LEASE
from airlock.services.rollouts import Rollouts
from airlock.services.workspace import Workspace


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_is_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AIRLOCK_HOME": str(tmp_path / ".airlock"), "AIRLOCK_USER": "maya"}
    env.pop("AIRLOCK_TOKEN", None)
    code = "from airlock.cli.main import run; run()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None
        assert ready.status_code == 200
        assert ready.json()["checks"]["controller"]["running"] is True
        token = (tmp_path / ".airlock" / "token").read_text().strip()
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.json()["user"] == "maya"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Traceback" not in out
    with Workspace.open(Settings(home=tmp_path / ".airlock", user="maya")) as ws:
        assert Rollouts(ws).lease_holder(LEASE) is None  # the controller resigned on the way out
    assert f"http://127.0.0.1:{port}/" in out
    assert "admin token" in out
