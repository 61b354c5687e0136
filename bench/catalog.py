"""Catalog at scale: reads through the real services and REST API over a big, bulk-loaded catalog.

A dedicated PostgreSQL database (``airlock_bench_catalog``, created and dropped here) and a
SQLite file are migrated as ``Workspace.open`` does, then bulk loaded (COPY on PostgreSQL,
executemany on SQLite) with: N releases over M models (versions pushed out of version
order, so the keyset order is not the insertion order), their ``release.push`` events,
alias moves (each with its event and history row), and filler events up to the total —
one valid hash chain, so ``show`` finds each release's push event and ``audit verify``
walks a real chain. Then, each sampled many times at random:

- resolve ``model@production`` (``Registry.resolve``), show a release (``Registry.show``:
  its manifest checked against the push event), diff two releases;
- a page of a model's releases: the first and the last (deepest) one, through the service
  and through ``GET /api/v1/models/{m}/releases`` (httpx.ASGITransport, the real app);
- the dashboard's model page (``GET /models/{m}``, the real Starlette app);
- ``audit verify`` of the whole chain: events per second.

Each figure has a reference measured in the same run, so it means something on a machine
busy with other work: a bare ``SELECT`` by primary key through the driver (the floor under a
resolve: one round trip), and sha256 alone over the same event bodies (the floor under a
verify); the machine's load average is printed with them.

Targets (issue 13): resolve p99 <= 2 ms, list page p99 <= 50 ms at any depth, audit verify
>= 100,000 events/s. ``--full`` loads the issue's sizes (1,000,000 releases over 1,000
models, 1,000,000 alias moves, 5,000,000 events on PostgreSQL; 100,000 releases on SQLite);
the default is a quick run of a few minutes. Prints a table, writes bench/results/catalog.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from airlock.api.app import create_app
from airlock.audit.chain import GENESIS, event_body, event_hash
from airlock.catalog import schema
from airlock.config import Settings
from airlock.core.digest import canonical_json
from airlock.core.manifest import Manifest
from airlock.core.paging import encode_cursor, version_key
from airlock.services.audit_views import AuditLog
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock.web.app import COOKIE, create_dashboard
from bench._report import report

PG_ADMIN = os.environ.get("AIRLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "airlock_bench_catalog"
ADMIN = Actor("bench", "admin")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"resolve": 2.0, "list": 50.0}
FULL = {"releases": 1_000_000, "models": 1_000, "moves": 1_000_000, "events": 5_000_000}
QUICK = {"releases": 100_000, "models": 200, "moves": 100_000, "events": 400_000}


@dataclass(frozen=True)
class Sizes:
    releases: int
    models: int
    moves: int
    events: int

    def scaled(self, f: float) -> Sizes:
        models = max(1, int(self.models * f))
        return Sizes(int(self.releases * f), models, int(self.moves * f), int(self.events * f))


# -- generating the catalog -------------------------------------------------------------------


class Chain:
    """Events with their hashes, in sequence, as ``audit.append`` would have written them."""

    def __init__(self) -> None:
        self.seq = 0
        self.prev = GENESIS

    def event(self, at: datetime, action: str, subject: str, details: dict[str, Any]) -> tuple:
        self.seq += 1
        at_text = at.isoformat(timespec="microseconds")
        details_text = canonical_json(details).decode("utf-8")
        digest = event_hash(
            seq=self.seq,
            at=at_text,
            actor="bench",
            action=action,
            subject=subject,
            details=details_text,
            prev_hash=self.prev,
        )
        row = (self.seq, at_text, "bench", action, subject, details_text, self.prev, digest)
        self.prev = digest
        return row


def _version(j: int) -> str:
    return f"{j // 100}.{(j // 10) % 10}.{j % 10}"


def generate(sizes: Sizes) -> Iterator[tuple[str, list[tuple]]]:
    """(table, rows) batches in insertion order; every table's ids are explicit."""
    per_model = max(1, sizes.releases // sizes.models)
    chain = Chain()
    yield (
        "models",
        [(m + 1, f"model-{m:04d}", T0) for m in range(sizes.models)],
    )
    rid = 0
    for m in range(sizes.models):
        name = f"model-{m:04d}"
        releases, events = [], []
        for i in range(per_model):
            j = (i * 7919) % per_model  # pushed out of version order
            rid += 1
            at = T0 + timedelta(seconds=rid)
            man = Manifest(
                name=name,
                version=_version(j),
                author="bench",
                created_at=at,
                metrics={"accuracy": (j % 97) / 97, "latency_ms": float(j % 13)},
            )
            canonical = man.canonical()
            digest = man.digest()
            releases.append(
                (
                    rid,
                    m + 1,
                    man.version,
                    version_key(man.version),
                    digest,
                    man.content_key(),
                    canonical.decode("utf-8"),
                    "bench",
                    at,
                    0,
                    0,
                    None,
                    False,
                )
            )
            events.append(
                chain.event(
                    at,
                    "release.push",
                    man.ref,
                    {
                        "digest": digest,
                        "files": 0,
                        "bytes": 0,
                        "parameters": None,
                        "has_pickle": False,
                        "parent": None,
                    },
                )
            )
        yield "releases", releases
        yield "events", events
    rng = random.Random(13)
    pointing: dict[tuple[int, str], int] = {}
    batch_h: list[tuple] = []
    batch_e: list[tuple] = []
    for k in range(sizes.moves):
        m = k % sizes.models
        alias = "production" if (k // sizes.models) % 2 == 0 else "staging"
        to = m * per_model + rng.randrange(per_model) + 1
        before = pointing.get((m, alias))
        at = T0 + timedelta(days=30, seconds=k)
        ev = chain.event(
            at, "alias.set", f"model-{m:04d}@{alias}", {"to": to, "from": before, "reason": "b"}
        )
        batch_e.append(ev)
        batch_h.append((k + 1, m + 1, alias, before, to, "bench", "bench move", at, ev[0]))
        pointing[(m, alias)] = to
        if len(batch_h) >= 50_000:
            yield "alias_history", batch_h
            yield "events", batch_e
            batch_h, batch_e = [], []
    yield "alias_history", batch_h
    yield "events", batch_e
    yield (
        "aliases",
        [(m + 1, alias, to, T0, "bench") for (m, alias), to in pointing.items()],
    )
    filler: list[tuple] = []
    while chain.seq < sizes.events:
        at = T0 + timedelta(days=60, seconds=chain.seq)
        filler.append(chain.event(at, "note.bench", f"n{chain.seq}", {"i": chain.seq}))
        if len(filler) >= 50_000:
            yield "events", filler
            filler = []
    yield "events", filler


COLUMNS = {
    "models": ("id", "name", "created_at"),
    "releases": (
        "id",
        "model_id",
        "version",
        "version_key",
        "digest",
        "content_key",
        "manifest",
        "author",
        "created_at",
        "total_size",
        "file_count",
        "parameters",
        "has_pickle",
    ),
    "events": ("seq", "at", "actor", "action", "subject", "details", "prev_hash", "hash"),
    "alias_history": (
        "id",
        "model_id",
        "alias",
        "from_release_id",
        "to_release_id",
        "actor",
        "reason",
        "at",
        "event_seq",
    ),
    "aliases": ("model_id", "name", "release_id", "updated_at", "updated_by"),
}


def bulk_load(ws: Workspace, sizes: Sizes) -> float:
    started = time.perf_counter()
    engine = ws.db.engine
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, rows in generate(sizes):
                if not rows:
                    continue
                cols = ", ".join(COLUMNS[table])
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            for table in ("models", "releases", "alias_history"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            raw.commit()
            driver = raw.driver_connection
            assert driver is not None
            driver.autocommit = True  # VACUUM: the visibility map autovacuum would have built
            driver.execute("VACUUM ANALYZE")
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            for table, rows in generate(sizes):
                if rows:
                    t = schema.metadata.tables[table]
                    conn.execute(
                        insert(t), [dict(zip(COLUMNS[table], r, strict=True)) for r in rows]
                    )
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


# -- measuring ---------------------------------------------------------------------------------


def _ms(fn: Callable[[], object], n: int) -> list[float]:
    """``n`` timings in ms, after a few untimed calls (the first call of a statement compiles
    it and the driver prepares it on the fifth: a serving process is past that)."""
    for _ in range(min(10, n)):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _pcts(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return round(statistics.median(samples), 3), round(q[98], 3)


def _raw_pk_select(ws: Workspace, sizes: Sizes, n: int) -> list[float]:
    """The floor under any read on this machine now: one SELECT by primary key through the
    driver (no SQLAlchemy, no pool), the same round trip a resolve makes."""
    rng = random.Random(3)
    raw = ws.db.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if ws.db.engine.dialect.name == "postgresql":
            driver.autocommit = True
            sql = "SELECT id, manifest FROM releases WHERE id = %s"
        else:
            sql = "SELECT id, manifest FROM releases WHERE id = ?"

        def one() -> None:
            cur = driver.cursor()
            cur.execute(sql, (rng.randrange(sizes.releases) + 1,))
            cur.fetchone()
            cur.close()

        return _ms(one, n)
    finally:
        raw.close()


def _sha256_rate(ws: Workspace, limit: int = 200_000) -> float:
    """Events per second that hashing alone reaches on this machine now: sha256 of the same
    canonical bodies ``audit verify`` hashes (built beforehand, so only the hashing counts)."""
    with ws.db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, at, actor, action, subject, details, prev_hash FROM events "
                "ORDER BY seq LIMIT :n"
            ),
            {"n": limit},
        ).all()
    bodies = [event_body(*r) for r in rows]
    started = time.perf_counter()
    for body in bodies:
        hashlib.sha256(body).hexdigest()
    return len(bodies) / (time.perf_counter() - started)


def _deep_cursor(ws: Workspace, model_id: int, depth_from_end: int = 50) -> str:
    with ws.db.read() as conn:
        key, rid = conn.execute(
            text(
                "SELECT version_key, id FROM releases WHERE model_id = :m "
                "ORDER BY version_key DESC, id DESC LIMIT 1 OFFSET :o"
            ),
            {"m": model_id, "o": depth_from_end},
        ).one()
    return encode_cursor([key, rid])


def _explain_deep(ws: Workspace, model_id: int) -> str:
    """The plan PostgreSQL picks for the deepest page: no Seq Scan on releases wanted."""
    with ws.db.read() as conn:
        key, rid = conn.execute(
            text(
                "SELECT version_key, id FROM releases WHERE model_id = :m "
                "ORDER BY version_key DESC, id DESC LIMIT 1 OFFSET 50"
            ),
            {"m": model_id},
        ).one()
        plan = conn.execute(
            text(
                "EXPLAIN SELECT r.id FROM releases r JOIN models m ON m.id = r.model_id "
                "WHERE r.model_id = :m AND (r.version_key > :k OR (r.version_key = :k "
                "AND r.id > :i)) ORDER BY r.version_key, r.id LIMIT 51"
            ),
            {"m": model_id, "k": key, "i": rid},
        ).all()
    lines = [str(r[0]) for r in plan]
    return "index" if not any("Seq Scan on releases" in ln for ln in lines) else "SEQ SCAN"


def measure(ws: Workspace, sizes: Sizes, samples: int) -> list[list[Any]]:
    reg = Registry(ws)
    rng = random.Random(7)
    per_model = max(1, sizes.releases // sizes.models)
    models = [f"model-{m:04d}" for m in range(sizes.models)]

    def ref() -> str:
        return f"{rng.choice(models)}@{_version(rng.randrange(per_model))}"

    rows: list[list[Any]] = []

    def add(what: str, ms: list[float], target: float | None = None) -> None:
        p50, p99 = _pcts(ms)
        verdict = "" if target is None else ("ok" if p99 <= target else f"MISS (>{target} ms)")
        rows.append([what, p50, p99, len(ms), verdict])

    add(
        "resolve model@production",
        _ms(lambda: reg.resolve(f"{rng.choice(models)}@production"), samples),
        TARGETS["resolve"],
    )
    add("resolve model@version", _ms(lambda: reg.resolve(ref()), samples), TARGETS["resolve"])
    add("reference: SELECT by primary key (driver)", _raw_pk_select(ws, sizes, samples))
    add("show release", _ms(lambda: reg.show(ref()), samples))
    add("diff two releases", _ms(lambda: reg.diff(ref(), ref()), samples))
    add(
        "list page 1 (service)",
        _ms(lambda: reg.release_page(rng.choice(models), limit=50), samples),
        TARGETS["list"],
    )
    deep = {m: _deep_cursor(ws, i + 1) for i, m in enumerate(models[: min(50, len(models))])}
    deep_names = list(deep)
    add(
        "list last page (service)",
        _ms(
            lambda: reg.release_page((m := rng.choice(deep_names)), limit=50, cursor=deep[m]),
            samples,
        ),
        TARGETS["list"],
    )
    add(
        "alias history page (newest)",
        _ms(
            lambda: reg.alias_history_page(rng.choice(models), limit=50, newest_first=True), samples
        ),
        TARGETS["list"],
    )
    mid = models[len(models) // 2]
    add(
        "models page (middle)",
        _ms(lambda: reg.model_page(limit=50, cursor=encode_cursor([mid])), samples),
        TARGETS["list"],
    )

    api = create_app(ws, authenticate=lambda _: ADMIN)
    web = create_dashboard(ws, authenticate=lambda _: ADMIN)

    async def over_http() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://a") as c,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=web), base_url="http://w", cookies={COOKIE: "x"}
            ) as w,
        ):

            async def timed(
                client: httpx.AsyncClient, url: Callable[[], str], n: int
            ) -> list[float]:
                out = []
                for _ in range(n):
                    u = url()
                    t = time.perf_counter()
                    r = await client.get(u)
                    out.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        raise RuntimeError(f"GET {u}: {r.status_code} {r.text[:200]}")
                return out

            add(
                "REST resolve+show release",
                await timed(c, lambda: f"/api/v1/releases/{ref()}", samples),
            )
            add(
                "REST list page 1",
                await timed(
                    c, lambda: f"/api/v1/models/{rng.choice(models)}/releases?limit=50", samples
                ),
                TARGETS["list"],
            )

            def deep_url() -> str:
                m = rng.choice(deep_names)
                return f"/api/v1/models/{m}/releases?limit=50&cursor={deep[m]}"

            add("REST list last page", await timed(c, deep_url, samples), TARGETS["list"])
            add(
                "dashboard model page",
                await timed(w, lambda: f"/models/{rng.choice(models)}", max(20, samples // 5)),
            )

    asyncio.run(over_http())
    started, cpu = time.perf_counter(), time.process_time()
    chain = AuditLog(ws).verify()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not chain.ok:
        raise RuntimeError(f"the loaded chain does not verify: {chain.problem}")
    rate = chain.checked / seconds
    rows.append(
        [
            "audit verify (events/s)",
            round(rate),
            "",
            chain.checked,
            "ok" if rate >= 100_000 else "MISS (<100000/s)",
        ]
    )
    rows.append(["audit verify (events/CPU-s)", round(chain.checked / cpu), "", "", ""])
    sha_rate = _sha256_rate(ws)
    rows.append(["reference: sha256 of the event bodies (events/s)", round(sha_rate), "", "", ""])
    rows.append(["audit verify / sha256 alone", f"{rate / sha_rate:.2f}", "", "", ""])
    if ws.db.engine.dialect.name == "postgresql":
        rows.append(["EXPLAIN last page", _explain_deep(ws, 1), "", "", ""])
    load = f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    rows.append(["machine load (1-min average) after", load, "", "", ""])
    return rows


# -- databases ---------------------------------------------------------------------------------


def _pg_database(create: bool) -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            if create:
                admin.execute(f"CREATE DATABASE {DB_NAME}")
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL at {PG_ADMIN} not reachable ({exc}); skipping it")
        return None
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{DB_NAME}"


def run_one(backend: str, sizes: Sizes, samples: int) -> tuple[list[list[Any]], dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="airlock-bench-catalog-"))
    url = _pg_database(create=True) if backend == "postgres" else None
    if backend == "postgres" and url is None:
        return [], {}
    try:
        ws = Workspace.open(
            Settings(home=home / ".airlock", database_url=url, user="bench"), create=True
        )
        try:
            load_s = bulk_load(ws, sizes)
            print(f"{backend}: loaded {sizes} in {load_s:.1f} s", flush=True)
            rows = measure(ws, sizes, samples)
        finally:
            ws.close()
    finally:
        if backend == "postgres":
            _pg_database(create=False)
        shutil.rmtree(home, ignore_errors=True)
    label = f"{backend} ({sizes.releases:,} releases)"
    return [[label, *r] for r in rows], {"sizes": sizes.__dict__, "load_seconds": round(load_s, 1)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench catalog", description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="the issue's sizes (takes long)")
    p.add_argument("--releases", type=int)
    p.add_argument("--models", type=int)
    p.add_argument("--moves", type=int)
    p.add_argument("--events", type=int)
    p.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    p.add_argument(
        "--sqlite-fraction", type=float, default=0.1, help="SQLite sizes / PostgreSQL sizes"
    )
    p.add_argument("--samples", type=int, default=300)
    args = p.parse_args(argv)
    base = dict(FULL if args.full else QUICK)
    for key in base:
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    sizes = Sizes(**base)
    rows: list[list[Any]] = []
    extra: dict[str, Any] = {}
    if args.backend in ("postgres", "both"):
        r, e = run_one("postgres", sizes, args.samples)
        rows += r
        extra["postgres"] = e
    if args.backend in ("sqlite", "both"):
        small = sizes.scaled(args.sqlite_fraction) if args.backend == "both" else sizes
        r, e = run_one("sqlite", small, args.samples)
        rows += r
        extra["sqlite"] = e
    extra["load_average"] = os.getloadavg()  # other work on the machine inflates the p99s
    extra["cpus"] = os.cpu_count()
    report("catalog", ["catalog", "what", "p50 ms", "p99 ms", "n", "target"], rows, extra)
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs (other work inflates p99s)")
    return 0 if all("MISS" not in str(r[-1]) for r in rows) else 1
