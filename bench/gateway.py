"""Added latency of the gateway: an upstream called directly, through Airlock, through LiteLLM.

On loopback, an open-loop load generator sends requests at fixed rates (default
200 and 500 RPS) to (a) a fast OpenAI-compatible upstream directly, (b) the
Airlock gateway (``airlock gateway``: a real workspace, an ``upstream`` release
verified at load, catalog sync and telemetry flushes running) in front of it,
and (c) LiteLLM's proxy in front of the same upstream, when a LiteLLM install is
found (``--litellm PATH`` to its ``litellm`` executable; by default
``/tmp/litellm-venv/bin/litellm``). Each setup runs in its own process; while
one is measured the other proxies are paused (SIGSTOP), so their idle work
takes no CPU from it.

Each setup is run ``--repeat`` times, interleaved, and the median of each
percentile is reported (2-core machines are noisy). Latency is measured from
the *scheduled* send time (so a generator or server
that falls behind is charged for it: no coordinated omission) to the last byte
of the response. "added" is the setup's percentile minus the direct call's
percentile at the same rate, in the same run.

    python -m bench gateway [--rates 50,200,500] [--requests 3000] [--no-litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._processes import start as _start
from bench._processes import stop as _stop
from bench._report import report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LITELLM = "/tmp/litellm-venv/bin/litellm"
_BODY = json.dumps(
    {
        "model": "chat",
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "max_tokens": 16,
        "user": "bench",
    }
).encode()
_REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "echo",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, benchmark! " * 4},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 16, "total_tokens": 23},
    }
).encode()


# -- the upstream: a minimal, fast OpenAI-compatible server --------------------------------


async def _upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"].endswith("/models"):
        body = b'{"object":"list","data":[{"id":"echo","object":"model"}]}'
    else:
        body = _REPLY
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(_upstream_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _serve_airlock(port: int, upstream_port: int, home: Path) -> None:
    from airlock.config import Settings
    from airlock.gateway.server import run
    from airlock.services.identity import Actor
    from airlock.services.registry import Registry
    from airlock.services.serving import Serving
    from airlock.services.workspace import Workspace

    ws = Workspace.open(Settings(home=home, user="bench"), create=True)
    folder = home.parent / "release"
    folder.mkdir(exist_ok=True)
    config = {
        "runtime": "upstream",
        "base_url": f"http://127.0.0.1:{upstream_port}/v1",
        "model": "echo",
        "timeout_s": 10,
    }
    (folder / "config.json").write_text(json.dumps(config))
    actor = Actor("bench")
    ref = Registry(ws).push(folder, name="echo", version="1.0.0", actor=actor).ref
    Serving(ws).create("chat", ref, actor=actor, reason="benchmark")
    run(ws, host="127.0.0.1", port=port, log_level="warning")


# -- the load generator -------------------------------------------------------------------


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer


async def _request(conn: _Conn, request: bytes) -> int:
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        await conn.reader.readexactly(length)
    elif chunked:
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).strip(), 16)
            await conn.reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _load(
    port: int, path: str, rate: float, count: int, warmup: int, key: str
) -> dict[str, Any]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY
    idle: list[_Conn] = []
    latencies: list[float] = []
    errors = 0
    failures: dict[str, int] = {}
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds

    async def one(scheduled: float, measured: bool) -> None:
        nonlocal errors
        for attempt in range(2):  # a kept-alive connection the server closed: reconnect once
            conn = idle.pop() if idle and attempt == 0 else None
            try:
                if conn is None:
                    conn = _Conn(*await asyncio.open_connection("127.0.0.1", port))
                status = await _request(conn, request)
                break
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if conn is not None:
                    conn.writer.close()
                if attempt == 1:
                    errors += measured
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                    return
        done = clock()
        idle.append(conn)
        if status != 200:
            errors += measured
            failures[f"HTTP {status}"] = failures.get(f"HTTP {status}", 0) + 1
        elif measured:
            latencies.append((done - scheduled) * 1000.0)

    tasks = []
    start = clock() + 0.05
    total = warmup + count
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, i >= warmup)))
    await asyncio.gather(*tasks)
    elapsed = clock() - (start + warmup / rate)
    for conn in idle:
        conn.writer.close()
    latencies.sort()
    return {
        "sent": count,
        "ok": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50": _pct(latencies, 0.50),
        "p95": _pct(latencies, 0.95),
        "p99": _pct(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
        "failures": failures,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p95", "p99", "max")
    }
    out["sent"] = sum(r["sent"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    failures: dict[str, int] = {}
    for r in runs:
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
    out["failures"] = failures
    return out


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _run_load(
    port: int, path: str, rate: float, count: int, warmup: int, key: str
) -> dict[str, Any]:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result: dict[str, Any] = runner(_load(port, path, rate, count, warmup, key))
    return result


# -- orchestration --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(12).startswith(b"HTTP/1.1 2"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not become ready in {timeout:.0f} s")


def _server_histogram(port: int) -> dict[float, float]:
    """The Airlock gateway's own latency histogram from ``/metrics`` (received → last byte,
    upstream call included): cumulative counts by bucket upper bound in seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    counts: dict[float, float] = {}
    for line in raw.decode().splitlines():
        if line.startswith("airlock_gateway_request_latency_seconds_bucket{") and (
            'traffic="live"' in line
        ):
            le = float(line.split('le="', 1)[1].split('"', 1)[0])
            counts[le] = counts.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def _server_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound (ms) of the bucket holding quantile ``q`` of the calls made in between."""
    deltas = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = deltas[-1][1] if deltas else 0.0
    for le, count in deltas:
        if total and count >= q * total:
            return le * 1000.0
    return float("nan")


def _only_running(proxies: dict[str, subprocess.Popen[bytes]], name: str) -> None:
    """Freeze every proxy but the one measured (SIGSTOP its process group), so an idle
    setup's background work (LiteLLM's, a gateway's sync ticks) takes no CPU from the
    one under load on a 2-core machine; the shared upstream keeps running."""
    for other, proc in proxies.items():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT if other == name else signal.SIGSTOP)


def _litellm_config(folder: Path, upstream_port: int) -> Path:
    path = folder / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params:\n"
        "      model: openai/echo\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
    )
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench gateway", description=__doc__)
    parser.add_argument("--rates", default="50,200,500", help="comma-separated request rates (RPS)")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per run")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests first")
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved runs per setup; medians are reported"
    )
    parser.add_argument("--litellm", default=DEFAULT_LITELLM, help="path to the litellm CLI")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    parser.add_argument("role", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "_upstream":
        _serve_upstream(args.port)
        return 0
    if args.role == "_airlock":
        _serve_airlock(args.port, args.upstream_port, Path(args.home))
        return 0

    rates = [float(r) for r in args.rates.split(",") if r]
    key = "sk-" + secrets.token_hex(32)
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-gw-"))
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[list[Any]] = []
    notes: dict[str, Any] = {}
    me = [sys.executable, "-m", "bench.gateway"]
    try:
        up_port, gw_port = _free_port(), _free_port()
        procs.append(_start([*me, "_upstream", "--port", str(up_port)], log=work / "upstream.log"))
        _wait_http(up_port, "/v1/models", procs[-1], 30)
        targets: list[tuple[str, int, str]] = [("direct upstream", up_port, "/v1/chat/completions")]
        proxies: dict[str, subprocess.Popen[bytes]] = {}
        procs.append(
            _start(
                [
                    *me,
                    "_airlock",
                    "--port",
                    str(gw_port),
                    "--upstream-port",
                    str(up_port),
                    "--home",
                    str(work / "ws" / ".airlock"),
                ],
                log=work / "airlock.log",
            )
        )
        _wait_http(gw_port, "/healthz", procs[-1], 60)
        targets.append(("airlock gateway", gw_port, "/v1/chat/completions"))
        proxies["airlock gateway"] = procs[-1]
        litellm = (
            None
            if args.no_litellm
            else shutil.which(args.litellm)
            or (args.litellm if Path(args.litellm).is_file() else None)
        )
        if litellm:
            ll_port = _free_port()
            env = {
                **os.environ,
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "LITELLM_MASTER_KEY": key,
            }
            env.pop("DATABASE_URL", None)
            procs.append(
                _start(
                    [
                        litellm,
                        "--config",
                        str(_litellm_config(work, up_port)),
                        "--port",
                        str(ll_port),
                        "--host",
                        "127.0.0.1",
                        "--num_workers",
                        "1",
                    ],
                    env=env,
                    log=work / "litellm.log",
                )
            )
            try:
                _wait_http(ll_port, "/health/liveliness", procs[-1], 180)
                targets.append(("litellm proxy", ll_port, "/v1/chat/completions"))
                proxies["litellm proxy"] = procs[-1]
            except RuntimeError as exc:
                notes["litellm"] = f"LiteLLM proxy did not start: {exc}"
        else:
            notes["litellm"] = "LiteLLM not run: " + (
                "--no-litellm" if args.no_litellm else f"{args.litellm} not found"
            )
        results: dict[tuple[str, float], dict[str, Any]] = {}
        # the gateway's own view of the same calls (warmup included), to tell a tail made
        # inside the handler from one made around it (server, kernel, scheduler)
        inside: dict[float, list[tuple[float, float]]] = {rate: [] for rate in rates}
        for rate in rates:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in targets}
            for _ in range(args.repeat):  # interleaved, so drift on the machine hits all alike
                for name, port, path in targets:
                    _only_running(proxies, name)
                    before = _server_histogram(port) if name == "airlock gateway" else {}
                    runs[name].append(_run_load(port, path, rate, args.requests, args.warmup, key))
                    if name == "airlock gateway":
                        after = _server_histogram(port)
                        inside[rate].append(
                            (
                                _server_quantile(before, after, 0.5),
                                _server_quantile(before, after, 0.99),
                            )
                        )
            for name, got in runs.items():
                results[(name, rate)] = _median_run(got)
            base = results[("direct upstream", rate)]
            for name, _, _ in targets:
                r = results[(name, rate)]
                added = [r[q] - base[q] for q in ("p50", "p95", "p99")]
                rows.append(
                    [
                        name,
                        f"{rate:.0f}",
                        r["sent"],
                        r["errors"],
                        f"{r['rps']:.0f}",
                        f"{r['p50']:.2f}",
                        f"{r['p95']:.2f}",
                        f"{r['p99']:.2f}",
                        "—" if name == "direct upstream" else f"{added[0]:.2f}",
                        "—" if name == "direct upstream" else f"{added[1]:.2f}",
                        "—" if name == "direct upstream" else f"{added[2]:.2f}",
                    ]
                )
        for rate, seen in inside.items():
            if seen:
                p50 = statistics.median(p for p, _ in seen)
                p99 = statistics.median(p for _, p in seen)
                notes[f"airlock gateway's own latency at {rate:.0f} RPS (p50, p99)"] = (
                    f"<= {p50:.2f} ms, <= {p99:.2f} ms (histogram bucket bounds, upstream call included)"
                )
        notes["failures"] = {
            f"{name} @ {rate:.0f}": r["failures"]
            for (name, rate), r in results.items()
            if r["failures"]
        }
        for rate in rates:
            a = results.get(("airlock gateway", rate))
            ll = results.get(("litellm proxy", rate))
            base = results[("direct upstream", rate)]
            if a and ll:
                for q in ("p50", "p99"):  # added latency below 0.05 ms is noise: floor it there
                    ratio = (ll[q] - base[q]) / max(a[q] - base[q], 0.05)
                    notes[f"litellm/airlock added {q} at {rate:.0f} RPS"] = round(ratio, 1)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)  # a stopped process cannot handle SIGINT
            _stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    report(
        "gateway",
        [
            "setup",
            "RPS asked",
            "sent",
            "errors",
            "RPS done",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "added p50",
            "added p95",
            "added p99",
        ],
        rows,
        {
            "notes": notes,
            "requests_per_run": args.requests,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
        },
    )
    for key, value in notes.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
