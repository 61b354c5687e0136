"""Each runtime says which prompt it takes, so the gateway never names runtime kinds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.config import Settings
from airlock.runtime.base import Runtime
from airlock.runtime.builtin_model import train
from airlock.runtime.faults import FaultyRuntime
from airlock.runtime.loader import ReleaseLoader
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

ALICE = Actor("alice")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"), create=True)
    try:
        yield Registry(ws)
    finally:
        ws.close()


def _load(registry: Registry, folder: Path, version: str) -> Runtime:
    ref = registry.push(folder, name="chat", version=version, actor=ALICE).ref

    def resolve(text: str) -> tuple[str, Any]:
        row = registry.resolve(text)
        return row.ref, row.digest

    return ReleaseLoader(registry.store, resolve).load(ref).runtime


def test_the_builtin_model_continues_one_text(registry: Registry, tmp_path: Path) -> None:
    train("The moon is bright. The sea is calm.").save(tmp_path / "builtin")
    runtime = _load(registry, tmp_path / "builtin", "1.0.0")
    assert isinstance(runtime, Runtime) and runtime.prompt_style == "text"


def test_an_upstream_server_takes_chat_messages(registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "upstream"
    folder.mkdir()
    config = {"runtime": "upstream", "base_url": "http://127.0.0.1:9/v1", "model": "echo"}
    (folder / "config.json").write_text(json.dumps(config))
    runtime = _load(registry, folder, "1.0.0")
    assert isinstance(runtime, Runtime) and runtime.prompt_style == "messages"


def test_injected_faults_keep_the_wrapped_runtimes_style(
    registry: Registry, tmp_path: Path
) -> None:
    folder = tmp_path / "faulty"
    train("The moon is bright. The sea is calm.").save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["faults"] = {"error_rate": 0.5}
    (folder / "config.json").write_text(json.dumps(config))
    runtime = _load(registry, folder, "1.0.0")
    assert isinstance(runtime, FaultyRuntime) and runtime.prompt_style == "text"
