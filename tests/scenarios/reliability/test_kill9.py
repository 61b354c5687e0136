"""kill -9 of the real CLI, mid-work: nothing half-written survives, and work resumes.

``airlock push`` is killed at a random moment while it writes a few-MiB safetensors
folder: afterwards every blob under a digest hashes to it, ``airlock verify`` and
``airlock audit verify`` are clean, the release exists whole or not at all, and a
re-push succeeds. ``airlock serve`` (SQLite workspace) is killed at a random moment
during a canary rollout under traffic and restarted on the same workspace: the same
rollout resumes at the same or a later step, the controller keeps deciding, the audit
chain verifies and every telemetry row reads back whole.

Trials: ``AIRLOCK_RELIABILITY_TRIALS`` (default 2; ``make reliability`` runs many).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import select

from airlock import audit
from airlock.catalog.schema import release_telemetry
from airlock.config import Settings
from airlock.core.analysis import LATENCY_HISTOGRAM_SIZE
from airlock.errors import NotFound
from airlock.services.registry import Registry
from airlock.services.rollouts import Rollouts
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, write_model
from conftest import Ledger
from gateway.support import ALICE, MOON, Releases

T = TypeVar("T")
CLI = [sys.executable, "-c", "from airlock.cli.main import run; run()"]
MiB = 1 << 20


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_USER": "alice"}
    env["AIRLOCK_NO_PROGRESS"] = "1"
    for name in ("AIRLOCK_TOKEN", "AIRLOCK_DATABASE_URL", "AIRLOCK_STORE_URL", "AIRLOCK_URL"):
        env.pop(name, None)
    return env


def _start(args: list[str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI, *args],
            env=_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole, never leaked
        )


def _kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it died between the two calls
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _wait_until(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- kill -9 of `airlock push` -----------------------------------------------------------------


def _bad_blobs(home: Path) -> list[str]:
    """Blobs visible under a digest whose bytes do not hash to it (a partial write)."""
    bad = []
    for path in sorted((home / "blobs" / "sha256").glob("*/*")):
        if _sha256(path) != path.name:
            bad.append(path.name[:12])
    return bad


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _release_present(home: Path) -> bool:
    with Workspace.open(Settings(home=home, user="alice")) as ws:
        try:
            Registry(ws).resolve("chat@1.0.0")
        except NotFound:
            return False
    return True


def _pushed_events(home: Path) -> int:
    with Workspace.open(Settings(home=home, user="alice")) as ws, ws.db.read() as conn:
        return sum(1 for _ in audit.entries(conn, action="release.push"))


def _staging(home: Path) -> list[Path]:
    folder = home / "blobs" / ".staging"
    return list(folder.iterdir()) if folder.exists() else []


def _writing(home: Path, proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """Has the push staged its first bytes (or already ended)?"""
    return lambda: bool(_staging(home)) or proc.poll() is not None


def _push_args(folder: Path) -> list[str]:
    return ["push", str(folder), "--name", "chat", "--version", "1.0.0"]


def _writing_window(folder: Path, scratch: Path) -> float:
    """Seconds from the first staged byte to the end of a whole push, on this machine now."""
    home = scratch / ".airlock"
    Cli(home, {})("init")
    proc = _start(_push_args(folder), home, scratch / "push.log")
    try:
        _wait_until(_writing(home, proc), timeout=60, what="the push to start writing")
        began = time.monotonic()
        proc.wait(60)
        assert proc.returncode == 0, (scratch / "push.log").read_text()
        return max(time.monotonic() - began, 0.05)
    finally:
        _kill9(proc)


def test_kill9_of_push_leaves_no_partial_release(
    tmp_path: Path, trials: int, ledger: Ledger
) -> None:
    # 3 shards of 2 MiB of float32 (+ config): a few MiB, several blobs to be cut between
    folder = write_model(tmp_path / "model", shards=3, rows=64 * 1024)
    window = _writing_window(folder, tmp_path / "calibration")
    ledger.note(writing_window_s=round(window, 3))
    rng = random.Random()
    landed: Counter[str] = Counter()
    for trial in range(trials):
        home = tmp_path / f"trial-{trial}" / ".airlock"
        cli = Cli(home, {})
        cli("init")
        log = tmp_path / f"trial-{trial}" / "push.log"
        proc = _start(_push_args(folder), home, log)
        try:
            _wait_until(_writing(home, proc), timeout=60, what="the push to start writing")
            time.sleep(rng.uniform(0, window))
            finished_first = proc.poll() is not None
            _kill9(proc)
        finally:
            _kill9(proc)
        landed["after it finished" if finished_first else "mid-push"] += 1

        bad = _bad_blobs(home)
        verify = cli("verify", ok=False)
        shown = cli("show", "chat@1.0.0", ok=False)
        present = _release_present(home)
        if present:  # the release exists: then all of it, byte for byte
            out = tmp_path / f"trial-{trial}" / "pulled"
            pulled = cli("pull", "chat@1.0.0", str(out), ok=False)
            half = int(shown.exit_code != 0 or pulled.exit_code != 0 or _tree(out) != _tree(folder))
        else:  # or none of it: no model, no release event
            half = int(shown.exit_code == 0 or _pushed_events(home) != 0)
        audit_ok = cli("audit", "verify", ok=False).exit_code == 0
        repush = cli(*_push_args(folder), ok=False)
        again = cli("verify", ok=False)
        landed["left staging files (gc removed them)"] += int(bool(_staging(home)))
        gc = cli("gc", "--staging-min-age", "0", ok=False)
        failed = bool(
            bad
            or verify.exit_code != 0
            or half
            or not audit_ok
            or repush.exit_code != 0
            or again.exit_code != 0
            or gc.exit_code != 0
            or _staging(home)
        )
        ledger.trial(
            failed=failed,
            partial_blobs=len(bad),
            half_releases=half,
            failed_repush=int(repush.exit_code != 0),
        )
        assert not bad, f"trial {trial}: blobs that do not hash to their name: {bad}"
        assert verify.exit_code == 0, f"trial {trial}: {verify.output}"
        assert not half, f"trial {trial}: release half there: {shown.output}"
        assert audit_ok, f"trial {trial}: the audit chain does not verify"
        assert repush.exit_code == 0, f"trial {trial}: re-push failed: {repush.output}"
        assert again.exit_code == 0, again.output
        assert gc.exit_code == 0 and not _staging(home), gc.output  # gc clears a dead push's files
        assert b"Traceback" not in log.read_bytes()
    ledger.note(kills=dict(landed))


# -- kill -9 of `airlock serve` mid-rollout ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Traffic:
    """A thread of chat requests; counts answers by status and requests that found no server."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/v1/chat/completions"
        self.statuses: Counter[int] = Counter()
        self.unreachable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        n = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                n += 1
                body = {
                    "model": "chat",
                    "messages": [{"role": "user", "content": "moon"}],
                    "max_tokens": 4,
                    "user": f"user-{n}",
                }
                try:
                    self.statuses[client.post(self.url, json=body).status_code] += 1
                except httpx.TransportError:  # the server is down (killed, restarting)
                    self.unreachable += 1
                    time.sleep(0.05)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`airlock serve` on the workspace, ready; killed whole if it does not become ready."""
    args = ["serve", "--port", str(port), "--tick", "0.1", "--lease", "1"]
    proc = _start(args, home, log)
    try:
        _wait_until(
            lambda: _ready(port) or (proc.poll() is not None and _died(log)),
            timeout=60,
            what="`airlock serve` to be ready",
        )
    except BaseException:
        _kill9(proc)
        raise
    return proc


def _died(log: Path) -> bool:
    raise AssertionError(f"`airlock serve` exited:\n{log.read_text()[-3000:]}")


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _rollout(port: int, token: str, rollout_id: int) -> dict[str, Any]:
    r = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/rollouts/{rollout_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _decisions_since(detail: dict[str, Any], since: datetime) -> list[dict[str, Any]]:
    return [
        h
        for h in detail["history"]
        if h["action"] not in {"hold", "start"} and datetime.fromisoformat(h["at"]) > since
    ]


def _corrupt_telemetry(ws: Workspace) -> list[int]:
    """Ids of telemetry rows that do not read back whole."""
    bad = []
    with ws.db.read() as conn:
        for row in conn.execute(select(release_telemetry)):
            try:
                histogram = json.loads(row.latency_histogram)
                kinds = json.loads(row.errors_by_kind)
                if row.detail is not None:
                    json.loads(row.detail)
                ok = (
                    isinstance(histogram, list)
                    and len(histogram) == LATENCY_HISTOGRAM_SIZE
                    and isinstance(kinds, dict)
                    and 0 <= row.errors <= row.requests
                    and sum(histogram) <= row.requests
                    and row.window_start <= row.window_end
                )
            except (ValueError, TypeError):
                ok = False
            if not ok:
                bad.append(row.id)
    return bad


def _decided(port: int, token: str, rollout_id: int, since: datetime) -> dict[str, Any]:
    """The rollout once the controller made a step decision after ``since`` (or ended)."""

    def check() -> dict[str, Any] | None:
        detail = _rollout(port, token, rollout_id)
        if _decisions_since(detail, since) or detail["phase"] != "progressing":
            return detail
        return None

    return _wait_until(check, timeout=45, what="a controller decision after the restart")


def test_kill9_of_serve_mid_rollout_resumes(tmp_path: Path, trials: int, ledger: Ledger) -> None:
    home = tmp_path / ".airlock"
    with Workspace.open(Settings(home=home, user="alice"), create=True) as ws:
        releases = Releases(ws, tmp_path / "releases")
        stable = releases.builtin("chat", "1.0.0", MOON)
        candidate = releases.builtin("chat", "1.1.0", MOON)
        releases.serving.create("chat", stable, actor=ALICE, reason="launch")
    # small steps, so the rollout is still live when the last trial kills the server
    count = 5 * trials + 4
    weights = [round(5 + 85 * i / count, 2) for i in range(count)] + [100]
    spec = {
        "strategy": "canary",
        "steps": [{"weight_pct": w, "bake_seconds": 0.3} for w in weights],
        "analysis": {
            "min_requests": 10,
            "max_step_seconds": 120,
            "metrics": {"latency": {"tolerance": 1.0}},
            # 0.3 s steps: requests routed under the previous step's plan that finish after a
            # decision are a large share of each step, which the sample-ratio check would
            # (rightly) call a mismatch on a loaded machine; it has its own tests.
            "srm_alpha": 0.0,
        },
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    auth: dict[str, str] = {}
    log = tmp_path / "serve.log"
    rng = random.Random()
    steps_at_kill: list[int] = []
    proc = _serve(home, port, log)
    try:
        token = (home / "token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        started = httpx.post(
            f"{url}/api/v1/services/chat/rollouts",
            json={"candidate": candidate, "spec": spec, "reason": "kill -9 trial"},
            headers=auth,
            timeout=30,
        )
        assert started.status_code == 201, started.text
        rollout_id = started.json()["rollout"]["id"]
        since = datetime.fromisoformat(started.json()["rollout"]["created_at"])
        with Traffic(url) as traffic:
            for _ in range(trials):
                detail = _decided(port, token, rollout_id, since)
                assert detail["phase"] == "progressing", detail.get("state")  # still live: kill now
                time.sleep(rng.uniform(0, 1.0))  # a random moment of the control loop
                _kill9(proc)
                since = datetime.now(UTC)
                with Workspace.open(Settings(home=home, user="alice")) as ws:
                    at_kill = Rollouts(ws).get(rollout_id)
                assert at_kill.live, "the rollout ended before the kill; raise the step count"
                steps_at_kill.append(at_kill.state.step_index)
                proc = _serve(home, port, log)
                # the restarted server resumes the same rollout, and its controller decides
                detail = _decided(port, token, rollout_id, since)
                resumed = detail["id"] == rollout_id and (detail["step"] - 1 >= steps_at_kill[-1])
                ledger.trial(failed=not resumed, lost_rollouts=int(not resumed))
                assert resumed, (steps_at_kill, detail)
            listed = httpx.get(f"{url}/api/v1/services/chat/rollouts", headers=auth, timeout=10)
    finally:
        _kill9(proc)
    audit = Cli(home, {})("audit", "verify", ok=False)
    with Workspace.open(Settings(home=home, user="alice")) as ws:
        corrupt = _corrupt_telemetry(ws)
    ledger.scenario.lost["corrupt_telemetry_rows"] = len(corrupt)
    ledger.scenario.lost["server_errors"] = traffic.server_errors
    ledger.note(
        answered=sum(traffic.statuses.values()),
        unreachable_while_down=traffic.unreachable,
        steps_at_kill=steps_at_kill,
    )
    assert [r["id"] for r in listed.json()] == [rollout_id]  # resumed, never started anew
    assert audit.exit_code == 0, audit.output
    assert not corrupt, f"telemetry rows that do not read back: {corrupt}"
    assert traffic.server_errors == 0, traffic.statuses
    assert traffic.statuses[200] > 0
    assert b"Traceback" not in log.read_bytes(), log.read_text()[-3000:]
