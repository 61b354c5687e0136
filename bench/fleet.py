"""A fleet under load: how long from a rollback decision until every replica sends every new
request to stable, and how long a standby controller takes over from a killed leader.

Real processes, wired as ``docs/deploy.md`` says: a PostgreSQL database created for the run
on 127.0.0.1:5432 (``AIRLOCK_BENCH_PG`` for another server; dropped at the end), moto's
server mode as the S3-compatible blob store on loopback, ``airlock db upgrade``, three
``airlock gateway`` replicas and two ``airlock controller`` processes (``--tick 0.1
--lease 2``). This process generates steady load through all three replicas
(``--concurrency`` closed-loop clients per replica) and starts the rollouts.

Each of ``--rounds`` rounds starts a canary (50 %) of a candidate that fails
``--error-rate`` of its calls; the leading controller detects it and rolls back. The
decision's moment is the rolled-back plan's time in the catalog (set by the controller as it
commits). Per replica, "every new request on stable" is the send time of the first request
that replica routed under the rolled-back plan generation (``X-Airlock-Plan-Generation``)
minus the decision's moment: an upper bound on when that replica swapped (within one
request's spacing), reached through PostgreSQL NOTIFY. ``violations`` counts requests
routed under the rolled-back generation that were answered by the candidate (must be 0).

Failover: the leader is killed (SIGKILL) and a faulty rollout started at once; measured
from the kill: the standby holds the lease, and the standby's first decision (its rollback)
is committed.

    python -m bench fleet [--rounds 20] [--concurrency 4] [--error-rate 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from airlock.config import Settings
from airlock.runtime.builtin_model import train
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace
from bench._processes import start, stop
from bench._report import report

CLI = [sys.executable, "-c", "from airlock.cli.main import run; run()"]
CORPUS = """
The moon is the natural satellite of the earth. The moon has craters and wide grey plains.

Astronauts walked on the moon in 1969. The phases of the moon go from new moon to full moon.
"""
ADMIN = Actor("alice", "admin")
TARGET_P99_MS = 100.0
TARGET_FAILOVER_S = 5.0
PG_ADMIN = os.environ.get("AIRLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(slots=True)
class Sent:
    at: float  # wall clock when the request was sent
    replica: int
    generation: int  # the plan generation the replica routed it under
    release: str  # the release that was routed to (the fallback's origin when there was one)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _database() -> Iterator[str]:
    import psycopg

    name = f"airlock_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _bucket() -> Iterator[str]:
    """An S3 bucket on moto's server mode (loopback), with test credentials in the env."""
    import boto3
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[key] = value
    os.environ.pop("AWS_PROFILE", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="airlock-bench"
    )
    try:
        yield f"s3://airlock-bench/fleet?endpoint_url={endpoint}&region=us-east-1"
    finally:
        server.stop()


def _push(ws: Workspace, root: Path, version: str, config: dict[str, Any] | None) -> str:
    from airlock.services.registry import Registry

    folder = root / version
    train(CORPUS).save(folder)
    if config:
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(config)
        (folder / "config.json").write_text(json.dumps(cfg))
    return Registry(ws).push(folder, name="chat", version=version, actor=ADMIN).ref


async def _client(
    client: httpx.AsyncClient, replica: int, worker: int, sent: list[Sent], stop: asyncio.Event
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "Tell me about the moon"}],
            "max_tokens": 4,
            "user": f"r{replica}w{worker}-{n}",
        }
        at = time.time()
        try:
            response = await client.post("/v1/chat/completions", json=body)
        except httpx.TransportError:
            await asyncio.sleep(0.05)
            continue
        routed = response.headers.get("x-airlock-fallback-from") or response.headers.get(
            "x-airlock-release", "?"
        )
        generation = int(response.headers.get("x-airlock-plan-generation", "-1"))
        sent.append(Sent(at, replica, generation, routed))


def _ready(url: str, generation: int | None = None) -> bool:
    try:
        response = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.TransportError:
        return False
    if response.status_code != 200:
        return False
    chat = response.json()["services"].get("chat", {})
    return generation is None or chat.get("served") == generation


async def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def _lease_holder(ws: Workspace) -> str | None:
    """The controller holding an unexpired leader lease (``host:pid:nonce``), if any."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    with ws.db.read() as conn:
        row = conn.execute(
            text("SELECT holder, expires_at FROM controller_leases ORDER BY expires_at DESC")
        ).first()
    if row is None or row.expires_at < datetime.now(UTC):
        return None
    return str(row.holder)


async def run(args: argparse.Namespace, root: Path, db_url: str, store_url: str) -> dict[str, Any]:
    from airlock.services.rollouts import Rollouts
    from airlock.services.serving import Serving

    home = root / ".airlock"
    env = {
        **os.environ,
        "AIRLOCK_HOME": str(home),
        "AIRLOCK_DATABASE_URL": db_url,
        "AIRLOCK_STORE_URL": store_url,
        "AIRLOCK_USER": "alice",
        "AIRLOCK_NO_PROGRESS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("AIRLOCK_TOKEN", "AIRLOCK_URL"):
        env.pop(name, None)
    for step in (["db", "upgrade"], ["init"]):
        subprocess.run([*CLI, *step], env=env, check=True, capture_output=True)
    settings = Settings(home=home, database_url=db_url, store_url=store_url, user="alice")
    ws = Workspace.open(settings)
    stable = _push(ws, root / "folders", "1.0.0", None)
    candidate = _push(ws, root / "folders", "1.1.0", {"faults": {"error_rate": args.error_rate}})
    serving = Serving(ws)
    rollouts = Rollouts(ws, serving=serving)
    serving.create("chat", stable, actor=ADMIN, reason="bench")
    logs = root / "logs"
    logs.mkdir()
    urls = [f"http://127.0.0.1:{_free_port()}" for _ in range(3)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for i, url in enumerate(urls):
        port = url.rsplit(":", 1)[1]
        procs[f"gateway-{i}"] = start(
            [*CLI, "gateway", "--port", port], log=logs / f"gateway-{i}.log", env=env
        )
    for name in ("controller-a", "controller-b"):
        procs[name] = start(
            [*CLI, "controller", "--tick", str(args.tick), "--lease", str(args.lease)],
            log=logs / f"{name}.log",
            env=env,
        )
    spec = {
        "strategy": "canary",
        "steps": [{"weight_pct": 50, "bake_seconds": 3600}],
        "analysis": {"min_requests": 50, "max_step_seconds": 3600},
    }
    sent: list[Sent] = []
    stop_load = asyncio.Event()
    rows: list[dict[str, Any]] = []
    failover: dict[str, float] = {}
    try:
        for url in urls:
            await _wait(lambda u=url: _ready(u), 90, f"{url}/readyz")
        await _wait(lambda: _lease_holder(ws), 30, "a leading controller")
        clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
        workers = [
            asyncio.create_task(_client(client, r, w, sent, stop_load))
            for r, client in enumerate(clients)
            for w in range(args.concurrency)
        ]
        await asyncio.sleep(1.0)  # warm up
        load_began, load_sent = time.time(), len(sent)
        for round_no in range(args.rounds):
            view = (
                await asyncio.to_thread(
                    rollouts.start, "chat", candidate, spec, actor=ADMIN, reason=f"round {round_no}"
                )
            ).rollout
            await _wait(lambda v=view: not rollouts.get(v.id).live, 60, "the rollback")
            ended = await asyncio.to_thread(rollouts.get, view.id)
            if ended.phase != "rolled_back":
                raise RuntimeError(f"round {round_no}: {ended.phase} ({ended.reason})")
            change = (await asyncio.to_thread(serving.history, "chat"))[-1]
            generation, decided = change.generation, change.at.timestamp()
            for url in urls:
                await _wait(lambda u=url, g=generation: _ready(u, g), 30, f"{url} at {generation}")
            await asyncio.sleep(args.settle)
            rows.append(_round(sent, decided, generation, candidate, len(urls)))
        load_rps = (len(sent) - load_sent) / (time.time() - load_began)

        # failover: kill the leader, start a faulty rollout at once
        holder = await asyncio.to_thread(_lease_holder, ws)
        assert holder is not None
        leader_pid = int(holder.split(":")[1])
        leader = next(n for n, p in procs.items() if p.pid == leader_pid)
        killed_at = time.time()
        os.killpg(procs[leader].pid, signal.SIGKILL)
        procs[leader].wait(10)
        view = (
            await asyncio.to_thread(
                rollouts.start, "chat", candidate, spec, actor=ADMIN, reason="failover"
            )
        ).rollout
        new_holder = await _wait(
            lambda: (h := _lease_holder(ws)) is not None and h != holder and h, 30, "the standby"
        )
        failover["lease"] = time.time() - killed_at
        await _wait(lambda: not rollouts.get(view.id).live, 60, "the standby's decision")
        change = (await asyncio.to_thread(serving.history, "chat"))[-1]
        failover["decision"] = change.at.timestamp() - killed_at
        failover["standby"] = float(int(str(new_holder).split(":")[1]) != leader_pid)
        stop_load.set()
        await asyncio.gather(*workers)
        for client in clients:
            await client.aclose()
    finally:
        stop_load.set()
        for proc in procs.values():
            stop(proc)
        ws.close()
    return {"rows": rows, "rps": load_rps, "requests": len(sent), "failover": failover}


def _round(
    sent: list[Sent], decided: float, generation: int, candidate: str, replicas: int
) -> dict[str, Any]:
    """Per replica: first request routed under the rolled-back generation, minus the decision."""
    switched: list[float] = []
    violations = 0
    for r in range(replicas):
        mine = [s for s in sent if s.replica == r and s.at >= decided - 5]
        new = [s for s in mine if s.generation >= generation]
        violations += sum(1 for s in new if s.release == candidate)
        first = min((s.at for s in new), default=None)
        if first is None:
            raise RuntimeError(f"replica {r} answered nothing under generation {generation}")
        switched.append(max(0.0, first - decided))
    return {"generation": generation, "switched": switched, "violations": violations}


def _ms(values: list[float]) -> list[str]:
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return [f"{pct(0.5) * 1e3:.1f}", f"{pct(0.99) * 1e3:.1f}", f"{ordered[-1] * 1e3:.1f}"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="clients per replica")
    parser.add_argument("--error-rate", type=float, default=0.5, help="the candidate's fault")
    parser.add_argument("--tick", type=float, default=0.1, help="controller tick (seconds)")
    parser.add_argument("--lease", type=float, default=2.0, help="controller lease (seconds)")
    parser.add_argument("--settle", type=float, default=0.3, help="load kept after a rollback")
    args = parser.parse_args(argv)
    logging.getLogger("airlock").setLevel(logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="airlock-bench-fleet-"))
    with _database() as db_url, _bucket() as store_url:
        result = asyncio.run(run(args, root, db_url, store_url))
    rows = result["rows"]
    all_switched = [t for r in rows for t in r["switched"]]
    per_replica = [[r["switched"][i] for r in rows] for i in range(3)]
    columns = ["from the rollback decision to ...", "p50 ms", "p99 ms", "max ms", "target"]
    table = [
        [
            "100 % of new requests on stable, every replica (all 3 × rounds)",
            *_ms(all_switched),
            f"p99 ≤ {TARGET_P99_MS:g} ms",
        ],
        *[[f"  replica {i + 1}", *_ms(values), ""] for i, values in enumerate(per_replica)],
        [
            "  the slowest replica of each round",
            *_ms([max(r["switched"]) for r in rows]),
            "",
        ],
    ]
    failover = result["failover"]
    table.append(
        [
            "leader killed → standby holds the lease (s)",
            f"{failover['lease']:.2f}",
            "",
            "",
            "",
        ]
    )
    table.append(
        [
            "leader killed → standby's first decision committed (s)",
            f"{failover['decision']:.2f}",
            "",
            "",
            f"≤ {TARGET_FAILOVER_S:g} s",
        ]
    )
    violations = sum(r["violations"] for r in rows)
    p99 = sorted(all_switched)[min(len(all_switched) - 1, round(0.99 * (len(all_switched) - 1)))]
    report(
        "fleet",
        columns,
        table,
        {
            "rounds": len(rows),
            "replicas": 3,
            "concurrency_per_replica": args.concurrency,
            "load_rps": round(result["rps"], 1),
            "requests": result["requests"],
            "violations": violations,
            "failover_s": failover,
            "raw": rows,
        },
    )
    print(
        f"{len(rows)} rollbacks under {3 * args.concurrency} closed-loop clients over 3 replicas "
        f"(~{result['rps']:.0f} requests/s); requests routed under a rolled-back plan to the "
        f"candidate: {violations}; mean of all: {statistics.fmean(all_switched) * 1e3:.1f} ms"
    )
    ok = violations == 0 and p99 * 1e3 <= TARGET_P99_MS
    ok = ok and failover["decision"] <= TARGET_FAILOVER_S and failover["standby"] == 1.0
    print("targets met" if ok else "target missed")
    return 0 if ok else 1


__all__ = ["main"]
