"""API tokens: stored hashed, revocable, expiring; where the CLI finds its token."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from airlock import audit
from airlock.catalog.schema import api_tokens
from airlock.errors import Forbidden, InvalidInput
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens, find_token, parse_duration, save_token
from airlock.services.workspace import Workspace

ADMIN = Actor("alice", "admin")


def test_only_the_hash_is_stored_and_never_logged(workspace: Workspace) -> None:
    issued = Tokens(workspace).create(user="bob", role="operator", actor=ADMIN, note="deploys")
    with workspace.db.read() as conn:
        rows = conn.execute(select(api_tokens)).mappings().all()
        events = list(audit.entries(conn))
    [row] = rows
    assert row["secret_hash"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert issued.secret not in str(dict(row))
    assert all(issued.secret not in str(e.details) for e in events)
    assert events[-1].action == "token.create" and events[-1].details["role"] == "operator"
    assert Tokens(workspace).authenticate(issued.secret) == Actor("bob", "operator", issued.id)


def test_a_wrong_secret_for_a_real_id_is_unknown(workspace: Workspace) -> None:
    issued = Tokens(workspace).create(user="bob", role="viewer", actor=ADMIN)
    forged = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    with pytest.raises(Forbidden, match="unknown API token"):
        Tokens(workspace).authenticate(forged)
    with pytest.raises(Forbidden, match="not an Airlock API token"):
        Tokens(workspace).authenticate("hunter2")


def test_expired_tokens_are_refused(workspace: Workspace) -> None:
    tokens = Tokens(workspace)
    issued = tokens.create(user="bob", role="viewer", actor=ADMIN, expires_in=timedelta(days=1))
    assert issued.expires_at is not None
    with workspace.db.write() as conn:
        conn.execute(update(api_tokens).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    with pytest.raises(Forbidden, match="expired on"):
        tokens.authenticate(issued.secret)
    assert tokens.list() == [] and tokens.list(include_inactive=True)[0].state == "expired"


def test_bootstrap_happens_once(workspace: Workspace) -> None:
    tokens = Tokens(workspace)
    assert not tokens.any_exist()
    first = tokens.bootstrap("alice")
    assert first is not None and first.role == "admin"
    assert tokens.bootstrap("mallory") is None
    assert [t.user for t in tokens.list()] == ["alice"]


def test_where_the_cli_finds_its_token(tmp_path: Path) -> None:
    assert find_token({}, tmp_path) is None
    path = save_token(tmp_path, "alk_file")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert find_token({}, tmp_path) == "alk_file"
    assert find_token({"AIRLOCK_TOKEN": " alk_env "}, tmp_path) == "alk_env"
    assert find_token({"AIRLOCK_TOKEN": ""}, tmp_path) == "alk_file"


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("8W") == timedelta(weeks=8)
    for bad in ("0d", "soon", "5y", "-1d"):
        with pytest.raises(InvalidInput, match="invalid duration"):
            parse_duration(bad)
