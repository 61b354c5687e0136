"""List pages at depth: the first and the last page of the lists paged in issue 13 item 4.

A dedicated PostgreSQL database (``airlock_bench_lists``, created and dropped here) and a
SQLite file are migrated as ``Workspace.open`` does, then bulk loaded with N approvals of
one release, N webhook deliveries (in batches that share one time, as a dispatcher pass
queues them) and N drills over two services. Each list is then read through its service,
a page of 50 at a time, from the start and from a cursor 60 items before its end; with an
offset scan the last page would cost N times the first. The plan of the deep page is shown
too (``index``: read through an index in the list's order, nothing scanned or sorted).

Prints a table, writes bench/results/list_pages.json. ``--rows`` sets N (default 100,000).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select

from airlock.catalog import schema
from airlock.config import Settings
from airlock.core.paging import encode_cursor
from airlock.services.drills import Drills
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.webhooks import Webhooks
from airlock.services.workspace import Workspace
from bench._report import report

PG_ADMIN = os.environ.get("AIRLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "airlock_bench_lists"
ADMIN = Actor("bench", "admin")
BATCH = 5_000


def _ms(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(out, n=100, method="inclusive")
    return round(statistics.median(out), 2), round(q[98], 2)


def _load(ws: Workspace, tmp: Path, n: int) -> str:
    folder = tmp / "model"
    folder.mkdir()
    (folder / "README.md").write_text("bench\n")
    ref = Registry(ws).push(folder, name="bench", version="1.0.0", actor=ADMIN).ref
    rid = Registry(ws).resolve(ref).id
    hooks = Webhooks(ws)
    hook_ids = [
        hooks.add(f"http://127.0.0.1:9/{i}", events="*", actor=ADMIN).row.id for i in (0, 1)
    ]
    start = datetime.now(UTC) - timedelta(days=30)
    for lo in range(0, n, BATCH):
        rows = range(lo, min(n, lo + BATCH))
        at = start + timedelta(seconds=lo)
        with ws.db.write() as conn:
            conn.execute(
                insert(schema.approvals),
                [
                    {
                        "release_id": rid,
                        "release_digest": "sha256:" + "0" * 64,
                        "stage": f"s{i}",
                        "decision": "approve",
                        "actor": "bob",
                        "role": "approver",
                        "comment": "",
                        "at": start + timedelta(seconds=i),
                        "event_seq": None,
                        "turn": 1,
                    }
                    for i in rows
                ],
            )
            conn.execute(
                insert(schema.webhook_deliveries),
                [
                    {
                        "id": f"{i:036d}",
                        "webhook_id": hook_ids[i % 2],
                        "event_seq": i // 2 + 1,
                        "action": "bench",
                        "state": "delivered",
                        "attempts": 1,
                        "next_attempt_at": at,
                        "created_at": at + timedelta(seconds=(i - lo) // 100),
                    }
                    for i in rows
                ],
            )
            conn.execute(
                insert(schema.drills),
                [
                    {
                        "service": f"svc-{i % 2}",
                        "rollout_id": None,
                        "release": ref,
                        "stable": ref,
                        "fault": "{}",
                        "outcome": "detected",
                        "started_at": at,
                        "finished_at": at,
                        "detect_seconds": 1.0,
                        "revert_seconds": 1.0,
                        "requests": 1,
                        "faulty_requests": 1,
                        "faulted_requests": 0,
                        "result": "{}",
                        "actor": "bench",
                        "event_seq": None,
                    }
                    for i in rows
                ],
            )
    return ref


def _deep_cursors(ws: Workspace, ref: str, depth: int) -> dict[str, str]:
    a, d, r = schema.approvals.c, schema.webhook_deliveries.c, schema.drills.c
    with ws.db.read() as conn:
        at, aid = conn.execute(
            select(a.at, a.id).order_by(a.at.desc(), a.id.desc()).offset(depth).limit(1)
        ).one()
        created, seq, did = conn.execute(
            select(d.created_at, d.event_seq, d.id)
            .order_by(d.created_at, d.event_seq, d.id)
            .offset(depth)
            .limit(1)
        ).one()
        (drill,) = conn.execute(
            select(r.id).where(r.service == "svc-1").order_by(r.id).offset(depth).limit(1)
        ).one()
    return {
        "approvals": encode_cursor([at.isoformat(), aid]),
        "deliveries": encode_cursor([created.isoformat(), seq, did]),
        "drills": encode_cursor([drill]),
    }


def _plan(ws: Workspace, call: Callable[[], object]) -> str:
    """``index`` when the catalog answers the page's query through an index, in its order:
    no Seq Scan or Sort (PostgreSQL), no full SCAN or TEMP B-TREE (SQLite)."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "LIMIT" in statement.upper():
            seen.append((statement, params))

    event.listen(ws.db.engine, "before_cursor_execute", grab)
    try:
        call()
    finally:
        event.remove(ws.db.engine, "before_cursor_execute", grab)
    statement, params = seen[-1]
    raw = ws.db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if ws.db.engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + statement, params)
            lines = [str(r[-1]) for r in cur.fetchall()]
            bad = [ln for ln in lines if "TEMP B-TREE" in ln or ln.startswith("SCAN")]
        else:
            cur.execute("EXPLAIN " + statement, params)
            lines = [str(r[0]) for r in cur.fetchall()]
            bad = [ln.strip() for ln in lines if "Seq Scan" in ln or "Sort" in ln.split("(")[0]]
    finally:
        raw.close()
    return "index" if not bad else "; ".join(bad)


def run_one(backend: str, n: int, samples: int) -> list[list[Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-lists-"))
    url = None
    if backend == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB_NAME}")
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        url = f"{base}/{DB_NAME}"
    rows: list[list[Any]] = []
    try:
        ws = Workspace.open(
            Settings(home=tmp / ".airlock", database_url=url, user="bench"), create=True
        )
        try:
            t = time.perf_counter()
            ref = _load(ws, tmp, n)
            print(
                f"{backend}: loaded 3 x {n:,} rows in {time.perf_counter() - t:.1f} s", flush=True
            )
            if backend == "postgres":
                with ws.db.write() as conn:
                    conn.exec_driver_sql("ANALYZE")
            deep = _deep_cursors(ws, ref, 60)
            gov, hooks, drills = Governance(ws), Webhooks(ws), Drills(ws)
            lists: dict[str, Callable[[str | None], object]] = {
                "approvals of a release": lambda c: gov.approval_page(ref, limit=50, cursor=c),
                "webhook deliveries": lambda c: hooks.delivery_page(limit=50, cursor=c),
                "drills of a service": lambda c: drills.page("svc-1", limit=50, cursor=c),
            }
            for (what, page), key in zip(lists.items(), deep, strict=True):
                first = _ms(lambda p=page: p(None), samples)
                last = _ms(lambda p=page, k=key: p(deep[k]), samples)
                plan = _plan(ws, lambda p=page, k=key: p(deep[k]))
                rows.append([backend, what, f"{n:,}", *first, *last, plan])
        finally:
            ws.close()
    finally:
        if backend == "postgres":
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench list_pages", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    args = p.parse_args(argv)
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    rows = [r for b in backends for r in run_one(b, args.rows, args.samples)]
    columns = [
        "catalog",
        "list",
        "rows",
        "page 1 p50 ms",
        "page 1 p99 ms",
        "last page p50 ms",
        "last page p99 ms",
        "plan of the last page",
    ]
    extra = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    report("list_pages", columns, rows, extra)
    print(json.dumps(extra))
    return 0
