"""A fleet of real processes on PostgreSQL and an S3-compatible store.

PostgreSQL on 127.0.0.1:5432 (a database created and dropped by the test), moto's server
mode as the S3-compatible blob store on loopback, ``airlock db upgrade`` once, then one
API server (``airlock serve --no-controller``), three ``airlock gateway`` replicas and two
``airlock controller`` processes, each a real process in its own session:

* a rollout started through the API reaches every replica (LISTEN/NOTIFY, the poll as a
  safety net): each replica's ``/readyz`` and ``/metrics`` name the generation it serves;
* kill -9 of the leading controller mid-rollout: the standby takes the lease over and
  finishes the rollout;
* telemetry of all three replicas is summed in the catalog, which is what the controller
  judges (its :class:`~airlock.services.controller.CatalogTelemetry`);
* a fourth replica started late catches up to the current generation.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text

from airlock.config import Settings
from airlock.services.controller import CatalogTelemetry
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import ALICE, MOON, Releases

moto_server = pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is needed")
boto3 = pytest.importorskip("boto3", reason="boto3 (the dev extra) is needed")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T = TypeVar("T")
CLI = [sys.executable, "-c", "from airlock.cli.main import run; run()"]
SPEC = {
    "strategy": "canary",
    "steps": [
        {"weight_pct": 20, "bake_seconds": 1.5},
        {"weight_pct": 50, "bake_seconds": 1.5},
        {"weight_pct": 80, "bake_seconds": 1.5},
        {"weight_pct": 100, "bake_seconds": 1.0},
    ],
    "analysis": {
        "min_requests": 5,
        "max_step_seconds": 120,
        "metrics": {"latency": {"tolerance": 1.0}},
        "srm_alpha": 0.0,  # short steps on a loaded machine; the SRM check has its own tests
    },
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Standard AWS environment credentials for moto; nothing from the developer's ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store_url(aws_env: None) -> Iterator[str]:
    """An S3 bucket on moto's server mode (a real S3-compatible HTTP server on loopback)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"airlock-fleet-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/airlock?endpoint_url={endpoint}&region=us-east-1"
    finally:
        server.stop()


class Fleet:
    """Processes of one fleet; every one is killed (its whole session) at the end."""

    def __init__(self, home: Path, database_url: str, store_url: str) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "AIRLOCK_HOME": str(home),
            "AIRLOCK_DATABASE_URL": database_url,
            "AIRLOCK_STORE_URL": store_url,
            "AIRLOCK_USER": "alice",
            "AIRLOCK_NO_PROGRESS": "1",
            "PYTHONUNBUFFERED": "1",  # logs readable while the process runs
        }
        for name in ("AIRLOCK_TOKEN", "AIRLOCK_URL", "AIRLOCK_AUTO_MIGRATE"):
            self.env.pop(name, None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.home.parent / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*CLI, *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole, never leaked
            )
        self.procs[name], self.logs[name] = proc, log
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9(name)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def died(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and proc.returncode not in (0, -9):
                return f"{name} exited {proc.returncode}:\n{self.log(name)[-3000:]}"
        return None


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def _ready(url: str, fleet: Fleet) -> dict[str, Any] | None:
    problem = fleet.died()
    assert problem is None, problem
    response = _get(f"{url}/readyz")
    if response is None or response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


def _serves(url: str, generation: int) -> bool:
    """The replica's /readyz says it serves ``chat`` at ``generation`` (what the catalog holds)."""
    response = _get(f"{url}/readyz")
    if response is None or response.status_code != 200:
        return False
    chat = response.json()["services"].get("chat", {})
    return bool(chat.get("served") == generation == chat.get("catalog"))


def _metric(url: str, name: str, labels: str) -> float | None:
    response = _get(f"{url}/metrics")
    assert response is not None and response.status_code == 200
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", response.text, re.M)
    return float(found.group(1)) if found else None


def _requests_in_metrics(url: str, release: str) -> int:
    value = _metric(
        url,
        "airlock_gateway_requests_total",
        f'release="{release}",service="chat",traffic="live"',  # sorted, as exposed
    )
    return int(value or 0)


class Traffic:
    """Chat requests round-robin over the replicas; answers counted per replica."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.sent: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                url = self.urls[n % len(self.urls)]
                body = {
                    "model": "chat",
                    "messages": [{"role": "user", "content": "moon"}],
                    "max_tokens": 4,
                    "user": f"user-{n}",
                }
                try:
                    response = client.post(f"{url}/v1/chat/completions", json=body)
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                self.statuses[response.status_code] += 1
                self.sent[url] += 1
                time.sleep(0.01)


def _leader_pid(ws: Workspace) -> int | None:
    with ws.db.read() as conn:
        row = conn.execute(
            text("SELECT holder, expires_at FROM controller_leases ORDER BY expires_at DESC")
        ).first()
    if row is None or row.expires_at < datetime.now(UTC):
        return None
    return int(str(row.holder).split(":")[1])


def test_a_fleet_follows_a_rollout_and_survives_its_leader(
    tmp_path: Path, pg_url: str, store_url: str
) -> None:
    home = tmp_path / ".airlock"
    fleet = Fleet(home, pg_url, store_url)
    upgraded = fleet.run("db", "upgrade")
    assert "applied" in upgraded and "0001_foundation" in upgraded
    Cli(home, {"AIRLOCK_DATABASE_URL": pg_url, "AIRLOCK_STORE_URL": store_url})("init")
    settings = Settings(home=home, database_url=pg_url, store_url=store_url, user="alice")
    with Workspace.open(settings) as ws:
        releases = Releases(ws, tmp_path / "releases")
        stable = releases.builtin("chat", "1.0.0", MOON)
        candidate = releases.builtin("chat", "1.1.0", MOON)
        releases.serving.create("chat", stable, actor=ALICE, reason="launch")
    token = (home / "token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}

    api_port = _free_port()
    api = f"http://127.0.0.1:{api_port}"
    replicas = [f"http://127.0.0.1:{_free_port()}" for _ in range(4)]
    ws = Workspace.open(settings)
    try:
        fleet.start("api", "serve", "--port", str(api_port), "--no-controller")
        for i, url in enumerate(replicas[:3]):
            fleet.start(f"gateway-{i}", "gateway", "--port", url.rsplit(":", 1)[1])
        for name in ("controller-a", "controller-b"):
            fleet.start(name, "controller", "--tick", "0.2", "--lease", "2")
        for url in [api, *replicas[:3]]:
            _wait_until(lambda u=url: _ready(u, fleet), timeout=60, what=f"{url}/readyz")
        ready = [_ready(url, fleet) for url in replicas[:3]]
        assert len({r["replica"] for r in ready if r}) == 3  # three distinct replicas

        since = time.time()
        with Traffic(replicas[:3]) as traffic:
            started = httpx.post(
                f"{api}/api/v1/services/chat/rollouts",
                json={"candidate": candidate, "spec": SPEC, "reason": "fleet test"},
                headers=auth,
                timeout=30,
            )
            assert started.status_code == 201, started.text
            rollout_id = started.json()["rollout"]["id"]
            serving = Serving(ws)

            # every replica serves the rollout's first plan, and says so
            first = serving.get("chat").plan.generation
            for url in replicas[:3]:
                _wait_until(lambda u=url: _serves(u, first), timeout=20, what=f"{url} at {first}")
                assert _metric(url, "airlock_plan_generation", 'service="chat"') == first

            # the leader advances the rollout at least once; then it is killed mid-rollout
            def advanced() -> bool:
                return serving.get("chat").plan.generation > first

            _wait_until(advanced, timeout=30, what="the leader's first decision")
            leader_pid = _wait_until(lambda: _leader_pid(ws), timeout=10, what="a lease")
            leader = next(n for n, p in fleet.procs.items() if p.pid == leader_pid)
            standby = "controller-b" if leader == "controller-a" else "controller-a"
            from airlock.services.rollouts import Rollouts

            assert Rollouts(ws).get(rollout_id).live, "the rollout ended before the kill"
            fleet.kill9(leader)

            # the standby takes the lease over and finishes the rollout
            def ended() -> bool:
                return not Rollouts(ws).get(rollout_id).live

            _wait_until(ended, timeout=45, what="the standby to finish the rollout")
            view = Rollouts(ws).get(rollout_id)
            assert view.phase in ("promoted", "completed"), (view.phase, view.reason)
            assert _leader_pid(ws) == fleet.procs[standby].pid
            assert f"rollout #{rollout_id} of chat" in fleet.log(standby)

            final = serving.get("chat").plan.generation
            for url in replicas[:3]:
                _wait_until(lambda u=url: _serves(u, final), timeout=20, what=f"{url} at {final}")
            time.sleep(0.3)
        assert traffic.statuses[200] > 0 and all(traffic.sent[u] > 0 for u in replicas[:3])
        assert not any(status >= 500 for status in traffic.statuses), traffic.statuses

        # telemetry of all three replicas, summed in the catalog: what the controller judges
        def summed() -> tuple[int, int] | None:
            windows = CatalogTelemetry(serving).read("chat", since - 5, [stable, candidate])
            in_catalog = sum(w.requests for (_, kind), w in windows.items() if kind == "live")
            served = sum(
                _requests_in_metrics(url, release)
                for url in replicas[:3]
                for release in (stable, candidate)
            )
            return (in_catalog, served) if in_catalog == served else None

        in_catalog, _ = _wait_until(summed, timeout=20, what="every replica's flush")
        per_replica = [
            sum(_requests_in_metrics(url, r) for r in (stable, candidate)) for url in replicas[:3]
        ]
        assert in_catalog == sum(per_replica) and min(per_replica) > 0
        assert in_catalog > max(per_replica)

        # a replica started late catches up to the current generation
        fleet.start("gateway-late", "gateway", "--port", replicas[3].rsplit(":", 1)[1])
        _wait_until(lambda: _ready(replicas[3], fleet), timeout=60, what="the late replica")
        _wait_until(lambda: _serves(replicas[3], final), timeout=10, what="the late replica")
        assert _metric(replicas[3], "airlock_plan_generation", 'service="chat"') == final
        late = _ready(replicas[3], fleet)
        assert late is not None and late["lagging"] == [] and late["last_sync_age_s"] < 60
    finally:
        ws.close()
        fleet.stop_all()
    for name in fleet.procs:
        assert "Traceback" not in fleet.log(name), f"{name}:\n{fleet.log(name)[-3000:]}"
    audit = Cli(home, {"AIRLOCK_DATABASE_URL": pg_url, "AIRLOCK_STORE_URL": store_url})(
        "audit", "verify", ok=False
    )
    assert audit.exit_code == 0, audit.output
