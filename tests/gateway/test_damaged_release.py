"""One damaged release no longer takes the whole server down: its service answers 503
naming the release (OpenAI error shape), the other services serve, and ``/readyz`` says
which service fails and why (503 only when nothing can serve)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from airlock.serve import AirlockApp, RunningServer, ServeSettings
from airlock.services.identity import Actor
from airlock.store import LocalStore
from gateway.support import COOKING, Releases

OPS = Actor("olga", "operator")
SETTINGS = ServeSettings(port=0, sync_seconds=0.2, run_controller=False, graceful_seconds=2)


def _damage(releases: Releases, ref: str) -> Callable[[], None]:
    """Flip a byte of the release's weights; returns what puts the original bytes back."""
    store = releases.ws.store
    assert isinstance(store, LocalStore)
    manifest = releases.registry.resolve(ref).manifest()
    entry = next(f for f in manifest.files if f.path.endswith(".safetensors"))
    path = store.path_of(entry.digest)
    os.chmod(path, 0o644)
    original = path.read_bytes()
    data = bytearray(original)
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return lambda: path.write_bytes(original)


def _settled(url: str) -> httpx.Response:
    """/readyz once no service is still loading (bounded wait, no timing assert)."""
    deadline = time.monotonic() + 60
    while True:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        services: dict[str, Any] = ready.json()["checks"].get("services", {})
        loading = [s for s in services.values() if s["status"] == "loading"]
        if (services and not loading) or time.monotonic() > deadline:
            return ready
        time.sleep(0.05)


def _ask(url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "the moon"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_a_damaged_release_fails_its_service_only(releases: Releases) -> None:
    chat = releases.builtin("chat", "1.0.0")
    code = releases.builtin("code", "1.0.0", COOKING)  # other weights: other blobs
    releases.serving.create("chat", chat, actor=OPS)
    releases.serving.create("code", code, actor=OPS)
    _damage(releases, chat)
    with RunningServer(AirlockApp(releases.ws, SETTINGS)) as server:
        ready = _settled(server.url)
        assert ready.status_code == 200, ready.text
        services = ready.json()["checks"]["services"]
        assert services["code"]["status"] == "serving"
        assert services["chat"]["status"] == "failed"
        assert "release chat@1.0.0 failed verification" in services["chat"]["error"]

        failed = _ask(server.url, "chat")
        assert failed.status_code == 503
        error = failed.json()["error"]
        assert "release chat@1.0.0 failed verification" in error["message"]
        assert error["type"] == "server_error"
        assert _ask(server.url, "code").status_code == 200


def test_readyz_is_503_when_nothing_can_serve(releases: Releases) -> None:
    chat = releases.builtin("chat", "1.0.0")
    releases.serving.create("chat", chat, actor=OPS)
    _damage(releases, chat)
    with RunningServer(AirlockApp(releases.ws, SETTINGS)) as server:
        ready = _settled(server.url)
        assert ready.status_code == 503
        assert ready.json()["checks"]["services"]["chat"]["status"] == "failed"


def test_a_repaired_release_is_served_again_without_a_new_plan(releases: Releases) -> None:
    chat = releases.builtin("chat", "1.0.0")
    releases.serving.create("chat", chat, actor=OPS)
    repair = _damage(releases, chat)
    settings = dataclasses.replace(SETTINGS, retry_failed_seconds=0.1)
    with RunningServer(AirlockApp(releases.ws, settings)) as server:
        assert _settled(server.url).json()["checks"]["services"]["chat"]["status"] == "failed"
        repair()
        deadline = time.monotonic() + 60
        while _ask(server.url, "chat").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ask(server.url, "chat").status_code == 200
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"]["services"]["chat"] == {
            "status": "serving",
            "catalog": 0,
            "served": 0,
        }
