"""Remote ``airlock audit verify``: the chain downloaded and recomputed on the client.

A workspace with N audit events behind ``airlock serve``'s API on loopback; measured:

- the server verifying its own catalog (``AuditLog.verify``): events per second;
- the real CLI in a separate process with ``AIRLOCK_URL`` (``airlock audit verify``):
  every event downloaded (JSON Lines, paged by sequence) and recomputed there: events
  per second and the process's peak memory (flat: streamed);
- ``--from-checkpoint`` with a checkpoint N-1000 events back: only the tail travels.

``python -m bench audit_remote [--events N]`` (default 200 000).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.audit.chain import GENESIS, Checkpoint, event_hash
from airlock.audit.checkpoint import sign_checkpoint
from airlock.catalog.schema import events
from airlock.config import Settings
from airlock.core.digest import canonical_json
from airlock.services.audit_views import AuditLog
from airlock.services.checkpoints import own_key
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace
from bench._report import report

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _load(ws: Workspace, n: int) -> str:
    """Append ``n`` events after the existing ones; the head's hash."""
    head = AuditLog(ws).head()
    seq, prev = head.seq, head.hash if head.seq else GENESIS
    batch: list[dict[str, object]] = []
    for i in range(n):
        seq += 1
        at = (T0 + timedelta(milliseconds=i)).isoformat(timespec="microseconds")
        details = canonical_json({"i": i, "note": "bench event"}).decode()
        digest = event_hash(
            seq=seq,
            at=at,
            actor="bench",
            action="note.add",
            subject=f"n{i % 1000}",
            details=details,
            prev_hash=prev,
        )
        batch.append(
            {
                "seq": seq,
                "at": at,
                "actor": "bench",
                "action": "note.add",
                "subject": f"n{i % 1000}",
                "details": details,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
        if len(batch) == 20_000:
            with ws.db.write() as conn:
                conn.execute(insert(events), batch)
            batch = []
    if batch:
        with ws.db.write() as conn:
            conn.execute(insert(events), batch)
    return prev


class _Server:
    """uvicorn on a free loopback port, in a thread of this process (the server's side)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.01)
        sock = self.server.servers[0].sockets[0]
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from airlock.cli.main import run; run()", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"airlock {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench audit_remote")
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "server" / ".airlock"
        ws = Workspace.open(Settings(home=home, user="alice"), create=True)
        try:
            secret = Tokens(ws).create(user="vic", role="viewer", actor=Actor("a", "admin")).secret
            _load(ws, args.events)
            started, cpu = time.perf_counter(), time.process_time()
            local = AuditLog(ws).verify()
            local_s = time.perf_counter() - started
            assert local.ok, local.problem
            back = local.head_seq - 1000
            with ws.db.read() as conn:
                row = conn.execute(events.select().where(events.c.seq == back)).one()
            key = own_key(root / "laptop-config" / "airlock" / "keys" / "audit.key")
            (root / "cp.json").write_text(
                sign_checkpoint(Checkpoint(back, row.hash), "now", key).to_json()
            )
            with _Server(create_app(ws, authenticate=token_authenticator(ws))) as server:
                env = {
                    **os.environ,
                    "AIRLOCK_URL": server.url,
                    "AIRLOCK_TOKEN": secret,
                    "AIRLOCK_HOME": str(root / "laptop" / ".airlock"),
                    "AIRLOCK_NO_PROGRESS": "1",
                    "XDG_CONFIG_HOME": str(root / "laptop-config"),
                    "PYTHONPATH": os.pathsep.join(sys.path),
                }
                before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                full_s, out = _cli(["audit", "verify"], env)
                assert "verified on this machine" in out, out
                rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                tail_s, out = _cli(
                    ["audit", "verify", "--from-checkpoint", str(root / "cp.json")], env
                )
                assert "ok: 1000 event(s) verified" in out, out
                base_s, _ = _cli(["audit", "head"], env)  # start-up and one request
        finally:
            ws.close()
    n = local.checked
    rows = [
        ["server verifies its catalog", n, f"{local_s:.2f}", round(n / local_s), ""],
        [
            "CLI: download + recompute (process)",
            n,
            f"{full_s:.2f}",
            round(n / max(full_s - base_s, 1e-9)),
            f"{max(rss, before) / 1024:.0f}",
        ],
        ["CLI: --from-checkpoint (1000 back)", 1000, f"{tail_s:.2f}", "", ""],
        ["CLI: audit head (start-up + 1 call)", 0, f"{base_s:.2f}", "", ""],
    ]
    report(
        "audit_remote",
        ["what", "events", "seconds", "events/s", "peak RSS MiB"],
        rows,
        {"events": n, "cpu_s_local": time.process_time() - cpu},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
