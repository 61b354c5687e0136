"""Helpers shared by tests in every folder (a uniquely named module: each test folder
may have its own ``conftest``, so ``from conftest import ...`` would be ambiguous)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from typer.testing import CliRunner

# The PostgreSQL server the tests use (trust auth); tests make and drop their own databases.
PG_ADMIN_URL = os.environ.get("AIRLOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def write_model(
    folder: Path, *, shards: int = 2, rows: int = 16, seed: int = 0, **extra: str
) -> Path:
    """A small but real model folder: safetensors shards, a config and any extra text files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        tensors = {
            f"layer{i}.weight": rng.standard_normal((rows, 8)).astype(np.float32),
            f"layer{i}.bias": np.zeros(8, dtype=np.float16),
        }
        save_file(tensors, str(folder / f"model-{i:05d}-of-{shards:05d}.safetensors"))
    (folder / "config.json").write_text('{"architecture": "tiny", "hidden": 8}')
    for name, text in extra.items():
        (folder / name.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
        (folder / name.replace("__", "/")).write_text(text)
    return folder


class Cli:
    """The real ``airlock`` CLI through Typer's runner, in a given workspace."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.runner = CliRunner()
        self.env = {
            "AIRLOCK_HOME": str(home),
            "AIRLOCK_NO_PROGRESS": "1",
            "AIRLOCK_USER": "alice",
            "COLUMNS": "200",
            **env,
        }

    def __call__(self, *args: str, ok: bool = True, user: str | None = None) -> Any:
        from airlock.cli.main import app

        env = dict(self.env)
        if user:
            env["AIRLOCK_USER"] = user
        result = self.runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"airlock {' '.join(args)} exited {result.exit_code}:\n{result.output}"
            )
        return result


def failing_errors_metric() -> Any:
    """A stored ``error_rate`` verdict that failed, with an unbounded upper bound."""
    import math

    from airlock.core.verdict import MetricVerdict

    return MetricVerdict(
        metric="error_rate",
        outcome="fail",
        candidate_value=0.12,
        stable_value=0.01,
        effect=9.5,
        ci_low=3.2,
        ci_high=math.inf,
        threshold=1.2,
        n_candidate=400,
        n_stable=3600,
        effect_label="error rate",
        reason="error rate is at least 3.20×",
        evidence=812.0,
        evidence_needed=200.0,
        mde=1.5,
        required=True,
    )


class Server:
    """A real uvicorn server on a free loopback port, run in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def rewrite_chain(conn: Any, seq: int, **edit: str) -> None:
    """What an attacker with write access to the catalog does: edit event ``seq`` (if
    ``edit`` names columns), then recompute its hash and every later one so that the chain
    alone verifies again (only checkpoints held elsewhere catch it)."""
    from sqlalchemy import update

    from airlock.audit.chain import event_hash
    from airlock.catalog.schema import events

    if edit:
        conn.execute(update(events).where(events.c.seq == seq).values(**edit))
    prev = conn.execute(events.select().where(events.c.seq == seq - 1)).one().hash
    for row in list(conn.execute(events.select().where(events.c.seq >= seq).order_by("seq"))):
        digest = event_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=row.details,
            prev_hash=prev,
        )
        conn.execute(
            update(events).where(events.c.seq == row.seq).values(prev_hash=prev, hash=digest)
        )
        prev = digest
