"""Helpers for gateway tests: a SQLite workspace with builtin releases, uvicorn
servers on loopback ports (the gateway, and a fake OpenAI-compatible upstream that can
fail or stall on request), and the official ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from airlock.core.traffic import TrafficPlan
from airlock.gateway.app import create_app
from airlock.gateway.engine import Gateway, GatewaySettings
from airlock.runtime.builtin_model import train
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace

T = TypeVar("T")

MOON = """
The moon is the natural satellite of the earth. The moon has craters, mountains and wide grey plains.

The surface of the moon is covered in dust and rock. Astronauts walked on the moon in 1969.

The moon orbits the earth every twenty seven days. The phases of the moon go from new moon to full moon.
"""

COOKING = """
To make a tomato soup, chop the onions and fry them in olive oil. Add the tomatoes and simmer.

Season the soup with salt and pepper. Stir in fresh basil before you serve the soup.

To bake bread, mix flour, water, yeast and salt. Knead the dough and let it rise for one hour.
"""

ALICE = Actor("alice", "admin")


class Server:
    """A uvicorn server on a free loopback port, run in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

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
    def port(self) -> int:
        sock = self.server.servers[0].sockets[0]
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's event loop (where the gateway lives)."""
        assert self.loop is not None, "serve a gateway app to use call()"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def serve_gateway(gateway: Gateway, **hooks: Any) -> Server:
    server: Server

    async def capture_loop() -> None:
        server.loop = asyncio.get_running_loop()

    app = create_app(
        gateway,
        on_startup=[capture_loop, *hooks.get("on_startup", ())],
        on_shutdown=list(hooks.get("on_shutdown", ())),
    )
    server = Server(app)
    return server


# -- a fake OpenAI-compatible upstream ---------------------------------------------------


def fake_upstream_app(calls: list[dict[str, Any]]) -> Starlette:
    """Answers by the request's ``model``: ``fail`` -> 500, ``slow`` -> stalls 1.5 s,
    ``echo``/anything else -> echoes the last message (``upstream says: ...``)."""

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        calls.append(body)
        model = body.get("model")
        if model == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if model == "slow":
            await asyncio.sleep(1.5)
        if "messages" in body:
            text = "upstream says: " + str(body["messages"][-1]["content"])
        else:
            text = "upstream says: " + str(body.get("prompt"))
        if body.get("stream"):

            async def events() -> Any:
                for word in text.split(" "):
                    delta = {"content": word + " "} if "messages" in body else None
                    choice: dict[str, Any] = (
                        {"index": 0, "delta": delta, "finish_reason": None}
                        if delta
                        else {"index": 0, "text": word + " ", "finish_reason": None}
                    )
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n"
                usage = {"prompt_tokens": 3, "completion_tokens": len(text.split())}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        if "messages" in body:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        choice["finish_reason"] = "stop"
        usage = {"prompt_tokens": 3, "completion_tokens": len(text.split()), "total_tokens": 9}
        return JSONResponse({"id": "x", "choices": [choice], "usage": usage})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", chat, methods=["POST"]),
        ]
    )


# -- a workspace with releases ----------------------------------------------------------


class Releases:
    """Pushes real releases into a real workspace (SQLite + local blob store)."""

    def __init__(self, workspace: Workspace, root: Path) -> None:
        self.ws = workspace
        self.registry = Registry(workspace)
        self.serving = Serving(workspace, registry=self.registry)
        self.root = root

    def builtin(
        self,
        name: str,
        version: str,
        corpus: str = MOON,
        *,
        files: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        components: dict[str, str] | None = None,
    ) -> str:
        folder = self.root / f"{name}-{version}"
        train(corpus).save(folder)
        if config:
            cfg = json.loads((folder / "config.json").read_text())
            cfg.update(config)
            (folder / "config.json").write_text(json.dumps(cfg))
        self._extra(folder, files)
        return self.registry.push(
            folder, name=name, version=version, actor=ALICE, components=components
        ).ref

    def upstream(
        self,
        name: str,
        version: str,
        base_url: str,
        model: str = "echo",
        *,
        files: dict[str, Any] | None = None,
        **config: Any,
    ) -> str:
        folder = self.root / f"{name}-{version}"
        folder.mkdir(parents=True)
        cfg = {"runtime": "upstream", "base_url": f"{base_url}/v1", "model": model, **config}
        (folder / "config.json").write_text(json.dumps(cfg))
        self._extra(folder, files)
        return self.registry.push(folder, name=name, version=version, actor=ALICE).ref

    def components_only(self, name: str, version: str, base: str, files: dict[str, Any]) -> str:
        folder = self.root / f"{name}-{version}"
        folder.mkdir(parents=True)
        self._extra(folder, files)
        return self.registry.push(
            folder, name=name, version=version, actor=ALICE, components={"base_model": base}
        ).ref

    @staticmethod
    def _extra(folder: Path, files: dict[str, Any] | None) -> None:
        for fname, content in (files or {}).items():
            text = content if isinstance(content, str) else yaml.safe_dump(content)
            (folder / fname).write_text(text)

    def gateway(self, settings: GatewaySettings | None = None) -> Gateway:
        return Gateway(self.serving.loader().load, settings)


def plan(service: str, stable: str, generation: int = 0, **kw: Any) -> TrafficPlan:
    return TrafficPlan(service=service, stable=stable, generation=generation, **kw)


def get(url: str, **kw: Any) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.get(url, **kw)


def post(url: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.post(url, json=body, **kw)


def chat(
    server: Server,
    model: str,
    text: str = "Tell me about the moon",
    *,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8, **kw}
    return post(f"{server.url}/v1/chat/completions", body, headers=headers or {})


Call = Callable[..., httpx.Response]
