"""Tamper evidence against someone who can write the catalog: checkpoints kept outside.

The attacker edits an event and recomputes every later hash (the chain alone still
verifies), or deletes events from the end; a checkpoint recorded earlier — as
SEQ:HASH or as a signed file — catches both, while legitimate new events pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from airlock import audit
from airlock.catalog.schema import events
from airlock.config import Settings
from airlock.serve import AirlockApp, RunningServer, ServeSettings
from airlock.services.checkpoints import CheckpointPublisher, Checkpoints, audit_key
from airlock.services.signatures import generate_key
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, rewrite_chain


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    workspace = Workspace.open(sqlite_settings, create=True)
    try:
        _events(workspace, 5)
        yield workspace
    finally:
        workspace.close()


def _events(ws: Workspace, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        with ws.db.write() as conn:
            audit.append(conn, actor="alice", action="note.add", subject=f"n{i}", details={"i": i})


def _recompute_from(ws: Workspace, seq: int, **edit: str) -> None:
    """What an attacker with write access to the catalog does: edit one event, then
    recompute its hash and every later one so that the chain verifies again."""
    with ws.db.write() as conn:
        rewrite_chain(conn, seq, **edit)
    with ws.db.read() as conn:
        assert audit.verify(conn).ok  # the chain alone cannot tell


def _head(cli: Cli) -> str:
    seq, digest = cli("audit", "head").output.split()
    return f"{seq}:{digest}"


def test_expect_holds_on_a_live_system_and_catches_a_recomputed_chain(
    ws: Workspace, cli: Cli
) -> None:
    mark = _head(cli)
    old_head = mark.split(":")[1]
    _events(ws, 3, start=5)  # legitimate events after the checkpoint
    assert "contains all 1 checkpoint" in cli("audit", "verify", "--expect", mark).output
    cli("audit", "verify", "--expect-head", old_head)  # the documented alias: still contained
    _recompute_from(ws, 3, actor="mallory")
    assert cli("audit", "verify").exit_code == 0
    result = cli("audit", "verify", "--expect", mark, ok=False)
    assert result.exit_code == 1
    assert "event 5" in result.output and "rewritten at or before event 5" in result.output
    assert cli("audit", "verify", "--expect-head", old_head, ok=False).exit_code == 1


def test_expect_catches_a_cut_tail(ws: Workspace, cli: Cli) -> None:
    mark = _head(cli)
    with ws.db.write() as conn:
        conn.execute(delete(events).where(events.c.seq >= 4))
    result = cli("audit", "verify", "--expect", mark, ok=False)
    assert result.exit_code == 1
    assert "ends at event 3" in result.output and "removed from the end" in result.output


def test_a_malformed_expect_is_one_clear_line(ws: Workspace, cli: Cli) -> None:
    result = cli("audit", "verify", "--expect", "five:abc", ok=False)
    assert result.exit_code != 0 and "not SEQ:HASH" in result.output
    assert "Traceback" not in result.output


def test_a_signed_checkpoint_file_detects_rewrites_and_cuts(
    ws: Workspace, cli: Cli, tmp_path: Path
) -> None:
    kept = tmp_path / "outside" / "checkpoints.jsonl"
    printed = json.loads(cli("audit", "checkpoint", "--out", kept).output)
    assert printed["seq"] == 5 and printed["type"] == "airlock.audit.checkpoint/v1"
    assert (ws.home / "keys" / "audit.key").stat().st_mode & 0o777 == 0o600
    _events(ws, 2, start=5)
    assert "contains all 1" in cli("audit", "verify", "--checkpoint", kept).output

    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**printed, "seq": 4}))
    result = cli("audit", "verify", "--checkpoint", forged, ok=False)
    assert result.exit_code != 0 and "signature does not verify" in result.output

    _recompute_from(ws, 2, subject="rewritten")
    result = cli("audit", "verify", "--checkpoint", kept, ok=False)
    assert result.exit_code == 1 and "rewritten at or before event 5" in result.output


def test_a_checkpoint_from_an_unknown_key_counts_only_when_its_key_is_given(
    ws: Workspace, cli: Cli, tmp_path: Path
) -> None:
    key_path, pub_path, _ = generate_key(tmp_path / "ops.key")
    signed = Checkpoints(ws).make(audit_key(ws, key_path))
    kept = tmp_path / "cp.json"
    kept.write_text(signed.to_json())
    result = cli("audit", "verify", "--checkpoint", kept, ok=False)
    assert result.exit_code != 0 and "neither this workspace's audit key" in result.output
    cli("audit", "verify", "--checkpoint", kept, "--public-key", pub_path)
    with ws.db.write() as conn:
        conn.execute(delete(events).where(events.c.seq == 5))
    result = cli("audit", "verify", "--checkpoint", kept, "--public-key", pub_path, ok=False)
    assert result.exit_code == 1 and "removed from the end" in result.output


def test_the_publisher_appends_one_checkpoint_every_n_events(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "published.jsonl"
    publisher = CheckpointPublisher(ws, path, 2, audit_key(ws))
    assert publisher.poll() is not None  # 5 events already: due at once
    assert publisher.poll() is None
    _events(ws, 1, start=5)
    assert publisher.poll() is None
    _events(ws, 1, start=6)
    assert publisher.poll() is not None
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == [5, 7]
    # A restarted publisher continues from the file.
    assert CheckpointPublisher(ws, path, 2, audit_key(ws)).last_seq == 7
    check = Checkpoints(ws).verify(files=[(str(path), path.read_text())])
    assert check.report.ok and len(check.checkpoints) == 2


def _published(path: Path, until: int) -> list[int]:
    """The sequences published to ``path``, once one reaches ``until`` (bounded wait)."""
    deadline = time.monotonic() + 30
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        seqs = [json.loads(line)["seq"] for line in lines]
        if (seqs and seqs[-1] >= until) or time.monotonic() > deadline:
            return seqs
        time.sleep(0.05)


def test_serve_publishes_checkpoints_to_a_file(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "served.jsonl"
    settings = ServeSettings(
        port=0, sync_seconds=0.1, checkpoint_every=3, checkpoint_file=path, run_controller=False
    )
    with RunningServer(AirlockApp(ws, settings)):
        first = _published(path, 5)  # 5 events already: one checkpoint is due at once
        _events(ws, 3, start=5)
        with ws.db.read() as conn:
            head = audit.verify(conn).head_seq
        seqs = _published(path, head)
    assert first and seqs[-1] == head and head >= first[-1] + 3
    assert Checkpoints(ws).verify(files=[(str(path), path.read_text())]).report.ok
