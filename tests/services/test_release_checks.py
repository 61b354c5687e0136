"""Catalog rows are checked, not trusted: a release row edited with SQL is named as tampered
by ``show``, ``verify`` and the serving loader (SQLite and PostgreSQL; the CLI on SQLite)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from airlock.catalog.schema import releases
from airlock.config import Settings
from airlock.core.manifest import Notes
from airlock.errors import IntegrityError
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from airlock_testkit import Cli

MakeModel = Callable[..., Path]
ALICE = Actor("alice", "admin")


def _two(ws: Workspace, make_model: MakeModel) -> Registry:
    reg = Registry(ws)
    reg.push(make_model("a", seed=1), name="chat", version="1.0.0", actor=ALICE)
    reg.push(make_model("b", seed=2), name="chat", version="1.1.0", actor=ALICE)
    return reg


def _swap_manifest_row(ws: Workspace, reg: Registry) -> None:
    """Put 1.1.0's manifest into 1.0.0's row (the digest column stays)."""
    other = reg.resolve("chat@1.1.0").manifest_json
    with ws.db.write() as conn:
        conn.execute(
            update(releases)
            .where(releases.c.id == reg.resolve("chat@1.0.0").id)
            .values(manifest=other)
        )


def _forge_consistently(ws: Workspace, reg: Registry) -> str:
    """Rewrite 1.0.0 so that manifest, digest and store agree: only the push event differs."""
    row = reg.resolve("chat@1.0.0")
    forged = row.manifest().model_copy(update={"notes": Notes(summary="now with a backdoor")})
    ws.store.ingest(io.BytesIO(forged.canonical()))
    with ws.db.write() as conn:
        conn.execute(
            update(releases)
            .where(releases.c.id == row.id)
            .values(manifest=forged.canonical().decode(), digest=forged.digest())
        )
    return str(forged.digest())


def test_a_swapped_manifest_row_is_named_everywhere(
    workspace: Workspace, make_model: MakeModel
) -> None:
    reg = _two(workspace, make_model)
    assert reg.show("chat@1.0.0").manifest.version == "1.0.0"
    _swap_manifest_row(workspace, reg)
    with pytest.raises(IntegrityError, match=r"chat@1\.0\.0 is tampered") as caught:
        reg.show("chat@1.0.0")
    assert "airlock verify" in (caught.value.hint or "")
    with pytest.raises(IntegrityError, match="tampered"):
        reg.manifest("chat@1.0.0")
    report = reg.verify()
    assert not report.ok and list(report.tampered) == ["chat@1.0.0"]
    assert "edited or swapped" in report.tampered["chat@1.0.0"]
    assert reg.verify("chat@1.1.0").ok
    with pytest.raises(IntegrityError, match=r"chat@1\.0\.0 is tampered"):
        Serving(workspace).loader().load("chat@1.0.0")


def test_a_consistently_forged_release_is_not_served(
    workspace: Workspace, make_model: MakeModel
) -> None:
    reg = _two(workspace, make_model)
    _forge_consistently(workspace, reg)
    with pytest.raises(IntegrityError, match="forged in the catalog"):
        Serving(workspace).loader().load("chat@1.0.0")
    with pytest.raises(IntegrityError, match="forged"):
        reg.show("chat@1.0.0")
    assert "forged" in reg.verify().tampered["chat@1.0.0"]


def test_the_cli_names_the_tampered_release(
    sqlite_settings: Settings, make_model: MakeModel, cli: Cli
) -> None:
    with Workspace.open(sqlite_settings, create=True) as ws:
        reg = _two(ws, make_model)
        _swap_manifest_row(ws, reg)
    result = cli("show", "chat@1.0.0", ok=False)
    assert result.exit_code != 0
    assert "chat@1.0.0 is tampered" in result.output and "airlock verify" in result.output
    assert "Traceback" not in result.output
    result = cli("verify", ok=False)
    assert result.exit_code == 1
    assert "tampered" in result.output and "chat@1.0.0" in result.output
    cli("show", "chat@1.1.0")
