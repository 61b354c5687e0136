"""Abusive requests in the middle of normal traffic: does the server stay responsive?

``airlock serve`` (the real CLI, in its own process: gateway, REST API, dashboard and
controller on one port) serves a builtin model on loopback. For ``--seconds`` (default
20) an open-loop generator sends ``--rps`` (default 100) ordinary chat requests while a
separate probe process times ``GET /healthz`` every 50 ms. In the middle, for a quarter
of the run, a third process sends every 0.5 s a round of abusive requests at once, each
streamed in chunks (no client ever holds one whole):

* the gateway: a 100 MB chat body (declared, and chunked with no length), a chat request
  of 1,000,000 messages (34 MB, declared), a ``/v1/responses`` body of 1,000,000 input
  messages and a 100 MB chunked one, a 100 MB chunked ``/v1/feedback``;
* the REST API: a 100 MB blob upload under a digest its bytes do not have (``PUT
  /api/v1/blobs/{digest}``, declared: uploads are streamed to staging and hashed, so the
  whole body is read), a chunked 100 MB upload declared as 10 bytes, a 100 MB chunked
  ``POST /api/v1/blobs/batch``, a batch of 300,000 numbers and a malformed one, a rollout
  spec of 100,000 invalid steps and a judge (quality) setting of 300,000 numbers.

The table gives ``/healthz`` latency (p50, p99, max) before, during and after, what each
abusive request got back and when, and the latency and errors of normal traffic. The
issue's target: ``/healthz`` p99 under 50 ms and its maximum under 250 ms.

``--max-body 48MiB`` raises the gateway's body limit (a ``--limits`` file), so the
1M-message requests are read whole and must be refused by their message count without
stalling anything (they are parsed in a worker process, counted as they are read).

    python -m bench limits [--rps 100] [--seconds 20] [--max-body 1MiB]    (make bench-limits)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench._processes import start as _start
from bench._processes import stop as _stop
from bench._report import report

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
CORPUS = """
The moon is the natural satellite of the earth. The moon has craters, mountains and plains.

The surface of the moon is covered in dust and rock. Astronauts walked on the moon in 1969.

The moon orbits the earth every twenty seven days. The phases go from new moon to full moon.
"""
_CHAT = {
    "model": "chat",
    "messages": [{"role": "user", "content": "Tell me about the moon"}],
    "max_tokens": 8,
}


# -- the set-up: a workspace with a builtin release behind the service `chat` --------------


def _workspace(home: Path) -> str:
    """The workspace; returns an admin API token."""
    from airlock.config import Settings
    from airlock.runtime.builtin_model import train
    from airlock.services.identity import Actor
    from airlock.services.registry import Registry
    from airlock.services.serving import Serving
    from airlock.services.tokens import Tokens
    from airlock.services.workspace import Workspace

    actor = Actor("bench", "admin")
    with Workspace.open(Settings(home=home, user="bench"), create=True) as ws:
        boot = Tokens(ws).bootstrap("bench")
        assert boot is not None
        folder = home.parent / "release"
        train(CORPUS).save(folder)
        ref = Registry(ws).push(folder, name="moon", version="1.0.0", actor=actor).ref
        Serving(ws).create("chat", ref, actor=actor, reason="limits benchmark")
        return boot.secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not become ready in 90 s")


# -- the probe: its own process, so the load generator's CPU does not delay it ---------------


def _probe(url: str, seconds: float, out: Path, every: float = 0.05) -> None:
    samples: list[tuple[float, float, int]] = []  # (wall time sent, latency ms, status)
    end = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        next_at = time.monotonic()
        while next_at < end:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent_wall, sent = time.time(), time.perf_counter()
            try:
                status = client.get(f"{url}/healthz").status_code
            except httpx.TransportError:
                status = 0
            samples.append((sent_wall, (time.perf_counter() - sent) * 1000.0, status))
            next_at += every
    out.write_text(json.dumps(samples))


# -- the load and the abusive requests --------------------------------------------------------


async def _big_body(total: int) -> AsyncIterator[bytes]:
    head = b'{"model": "chat", "messages": [{"role": "user", "content": "'
    yield head
    chunk = b"a" * (64 << 10)
    sent = len(head)
    while sent < total - 4:
        piece = chunk[: min(len(chunk), total - 4 - sent)]
        sent += len(piece)
        yield piece
    yield b'"}]}'


async def _many_messages(count: int, key: str = "messages") -> AsyncIterator[bytes]:
    yield b'{"model": "chat", "max_tokens": 4, "' + key.encode() + b'": ['
    one = b'{"role": "user", "content": "hi"}'
    batch = 2_000
    for start in range(0, count, batch):
        n = min(batch, count - start)
        yield (b"," if start else b"") + b",".join([one] * n)
    yield b"]}"


def _many_messages_size(count: int, key: str = "messages") -> int:
    one = len(b'{"role": "user", "content": "hi"}')
    head = len(b'{"model": "chat", "max_tokens": 4, "": [') + len(key)
    return head + count * one + count - 1 + 2


async def _zeros(total: int) -> AsyncIterator[bytes]:
    chunk = b"y" * (64 << 10)
    for start in range(0, total, len(chunk)):
        yield chunk[: min(len(chunk), total - start)]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _numbers(head: bytes, count: int, tail: bytes = b"}") -> bytes:
    return head + b"[" + b",".join([b"0"] * count) + b"]" + tail


async def _abuse(
    port: int,
    name: str,
    body: AsyncIterator[bytes],
    length: int | None,
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    headers: str = "",
) -> dict[str, Any]:
    """Send a body on a raw connection while reading: a server that answers before the body
    ends (413) is seen as the status it sent, with the bytes it had taken by then. With a
    declared ``length`` the body follows the headers only if no answer came within 0.2 s."""
    began_wall, began = time.time(), time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode()
    )
    sent = 0
    answered = asyncio.Event()

    async def send() -> None:
        nonlocal sent
        if length is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), 0.2)
        async for chunk in body:
            if answered.is_set():  # the server has spoken: stop, and let its answer be read
                return
            writer.write(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)  # let a reply that arrived be read before more is sent
        if length is None:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(send())
    outcome: str | int
    try:
        first = await asyncio.wait_for(reader.read(1), 120)
        answered.set()
        head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        outcome = int(head[9:12])
        size = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                size = int(value)
        detail = (await reader.readexactly(size)).decode(errors="replace") if size else ""
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["error"]["message"]
    except (ConnectionResetError, BrokenPipeError):
        # the server stopped reading and closed: on loopback its reset can overtake its answer
        outcome, detail = "closed", f"connection reset by the server after {sent / MB:.1f} MB"
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        outcome, detail = type(exc).__name__, str(exc)
    answered.set()
    done = time.perf_counter() - began
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await sender
    writer.close()
    return {
        "request": name,
        "outcome": outcome,
        "detail": detail[:160],
        "seconds": done,
        "sent_mb": sent / MB,
        "start": began_wall,
        "end": began_wall + done,
    }


def _round(port: int, token: str) -> list[Any]:
    """One round of abusive requests (coroutines), every edge at once."""
    auth = f"Authorization: Bearer {token}\r\n"
    blob = "/api/v1/blobs/sha256:" + os.urandom(32).hex()  # a digest no bytes will match
    batch = "/api/v1/blobs/batch"
    million = _many_messages_size(1_000_000)
    steps = b'{"candidate": "moon@1.0.0", "spec": {"strategy": "canary", "steps": ['
    steps += b",".join([b"{}"] * 100_000) + b"]}}"
    api = {"headers": auth}
    return [
        _abuse(port, "chat: 100 MB body", _big_body(100 * MB), 100 * MB),
        _abuse(port, "chat: 100 MB body, chunked", _big_body(100 * MB), None),
        _abuse(port, "chat: 1,000,000 messages", _many_messages(1_000_000), million),
        _abuse(
            port,
            "responses: 1,000,000 input messages",
            _many_messages(1_000_000, "input"),
            _many_messages_size(1_000_000, "input"),
            path="/v1/responses",
        ),
        _abuse(
            port,
            "responses: 100 MB, chunked",
            _big_body(100 * MB),
            None,
            path="/v1/responses",
        ),
        _abuse(port, "feedback: 100 MB, chunked", _zeros(100 * MB), None, path="/v1/feedback"),
        _abuse(
            port,
            "blob PUT: 100 MB, wrong digest",
            _zeros(100 * MB),
            100 * MB,
            method="PUT",
            path=blob,
            headers=auth + f"Content-Range: bytes 0-{100 * MB - 1}/{100 * MB}\r\n",
        ),
        _abuse(
            port,
            "blob PUT: 100 MB chunked, 10 declared",
            _zeros(100 * MB),
            None,
            method="PUT",
            path="/api/v1/blobs/sha256:" + os.urandom(32).hex(),
            headers=auth + "Content-Range: bytes 0-9/10\r\n",
        ),
        _abuse(port, "blob batch: 100 MB, chunked", _zeros(100 * MB), None, path=batch, **api),
        _abuse(
            port,
            "blob batch: 300,000 numbers",
            _once(_numbers(b'{"digests": ', 300_000)),
            len(_numbers(b'{"digests": ', 300_000)),
            path=batch,
            **api,
        ),
        _abuse(port, "blob batch: malformed", _once(b'{"digests": [{'), 14, path=batch, **api),
        _abuse(
            port,
            "rollout: 100,000 bad steps",
            _once(steps),
            len(steps),
            path="/api/v1/services/chat/rollouts",
            **api,
        ),
        _abuse(
            port,
            "judge: 300,000 numbers",
            _once(_numbers(b'{"quality": {"scorers": ', 300_000, b"}}")),
            len(_numbers(b'{"quality": {"scorers": ', 300_000, b"}}")),
            method="PUT",
            path="/api/v1/services/chat/quality",
            **api,
        ),
    ]


async def _abuse_for(port: int, token: str, seconds: float) -> list[dict[str, Any]]:
    """A round of abusive requests at once, again 0.5 s after each ends, for ``seconds``."""
    results: list[dict[str, Any]] = []
    end = time.perf_counter() + seconds
    while True:
        results += await asyncio.gather(*_round(port, token))
        if time.perf_counter() >= end:
            return results
        await asyncio.sleep(0.5)


def _abuser(port: int, token: str, delay: float, seconds: float, out: Path) -> None:
    """Its own process, so the abusive bytes it pushes do not delay the normal traffic's
    client (whose latencies are measured)."""
    time.sleep(delay)
    out.write_text(json.dumps(asyncio.run(_abuse_for(port, token, seconds))))


async def _drive(url: str, rps: float, seconds: float) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    latencies: list[tuple[float, float, int]] = []  # (wall time sent, ms, status) of each 200
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(i: int) -> None:
            sent_wall, sent = time.time(), time.perf_counter()
            try:
                r = await client.post("/v1/chat/completions", json={**_CHAT, "user": f"u{i}"})
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    latencies.append((sent_wall, (time.perf_counter() - sent) * 1000.0, 200))
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1

        tasks: list[asyncio.Task[Any]] = []
        start = time.perf_counter()
        total = int(rps * seconds)
        for i in range(total):
            delay = start + i / rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return {
        "sent": total,
        "statuses": dict(statuses),
        "errors": sum(n for k, n in statuses.items() if k != "200"),
        "samples": latencies,
    }


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _phases(
    label: str, samples: list[tuple[float, float, int]], abuse: list[dict[str, Any]]
) -> list[list[Any]]:
    first = min(a["start"] for a in abuse)
    last = max(a["end"] for a in abuse)
    phases = {
        "before": [s for s in samples if s[0] < first],
        "during": [s for s in samples if first <= s[0] <= last],
        "after": [s for s in samples if s[0] > last],
    }
    rows = []
    for name, got in phases.items():
        ms = [s[1] for s in got]
        failed = sum(1 for s in got if s[2] != 200)
        rows.append(
            [
                f"{label} {name}",
                len(got),
                f"{_pct(ms, 0.5):.1f}",
                f"{_pct(ms, 0.99):.1f}",
                f"{max(ms):.1f}" if ms else "—",
                f"{failed} not 200" if failed else "all 200",
            ]
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench limits", description=__doc__)
    parser.add_argument("--rps", type=float, default=100.0, help="normal chat requests a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the run")
    parser.add_argument(
        "--max-body", default=None, help="the gateway's max_body_bytes (default: its own, 1MiB)"
    )
    parser.add_argument(
        "--abuse-share", type=float, default=0.25, help="share of the run with abusive requests"
    )
    parser.add_argument("role", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "_probe":
        _probe(args.url, args.seconds, Path(args.out))
        return 0

    if args.role == "_abuse":
        _abuser(args.port, args.token, args.delay, args.seconds, Path(args.out))
        return 0

    work = Path(tempfile.mkdtemp(prefix="airlock-bench-limits-"))
    procs: list[subprocess.Popen[bytes]] = []
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on TERM too
    try:
        home = work / "ws" / ".airlock"
        token = _workspace(home)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = [sys.executable, "-c", "from airlock.cli.main import run; run()", "serve"]
        server += ["--port", str(port)]
        if args.max_body:
            limits = work / "limits.yaml"
            limits.write_text(f"max_body_bytes: {args.max_body}\n")
            server += ["--limits", str(limits)]
        env = {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_USER": "bench"}
        for name in ("AIRLOCK_DATABASE_URL", "AIRLOCK_STORE_URL", "AIRLOCK_TOKEN"):
            env.pop(name, None)
        log = work / "server.log"
        procs.append(_start(server, log=log, env=env))
        _wait_ready(url, procs[-1], log)
        probe_out, abuse_out = work / "probe.json", work / "abuse.json"
        probe = [sys.executable, "-m", "bench.limits", "_probe", "--url", url]
        probe += ["--seconds", str(args.seconds + 2), "--out", str(probe_out)]
        procs.append(_start(probe, log=work / "probe.log"))
        time.sleep(1.0)  # the probe's own start-up, so "before" has samples
        abuser = [sys.executable, "-m", "bench.limits", "_abuse", "--port", str(port)]
        abuser += ["--token", token, "--delay", str(args.seconds * 0.4)]
        abuser += ["--seconds", str(args.seconds * args.abuse_share), "--out", str(abuse_out)]
        procs.append(_start(abuser, log=work / "abuse.log"))
        load = asyncio.run(_drive(url, args.rps, args.seconds))
        for proc in procs[1:]:
            proc.wait(args.seconds + 120)
        samples = json.loads(probe_out.read_text())
        abuse = json.loads(abuse_out.read_text())
        server_alive = procs[0].poll() is None
    finally:
        for proc in reversed(procs):
            _stop(proc)
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)
    rows = _phases("/healthz", samples, abuse)
    first, last = min(a["start"] for a in abuse), max(a["end"] for a in abuse)
    for name in dict.fromkeys(a["request"] for a in abuse):
        sent = [a for a in abuse if a["request"] == name]
        took = [a["seconds"] * 1000 for a in sent]
        outcomes = Counter(str(a["outcome"]) for a in sent)
        rows.append(
            [
                name,
                len(sent),
                f"{_pct(took, 0.5):.0f}",
                f"{_pct(took, 0.99):.0f}",
                f"{max(took):.0f}, {max(a['sent_mb'] for a in sent):.1f} MB sent",
                ", ".join(f"{k} ×{v}" for k, v in outcomes.items()) + f": {sent[0]['detail'][:70]}",
            ]
        )
    rows += _phases(f"chat {args.rps:g}/s", load["samples"], abuse)
    rows.append(["normal chat, all", load["sent"], "", "", "", f"{load['errors']} errors"])
    during = [s[1] for s in samples if first <= s[0] <= last]
    all_ms = [s[1] for s in samples]
    p99, worst = _pct(all_ms, 0.99), max(all_ms)
    chat_ms = [s[1] for s in load.pop("samples")]
    report(
        "limits",
        ["what", "n", "p50 ms", "p99 ms", "max ms", "result"],
        rows,
        {
            "rps": args.rps,
            "seconds": args.seconds,
            "server": "airlock serve",
            "max_body": args.max_body or "default (1MiB)",
            "healthz_p99_ms_whole_run": p99,
            "healthz_p99_ms_during": _pct(during, 0.99),
            "healthz_max_ms": worst,
            "chat_p50_ms": _pct(chat_ms, 0.5),
            "chat_p99_ms": _pct(chat_ms, 0.99),
            "target_healthz_p99_ms": 50,
            "target_healthz_max_ms": 250,
            "server_alive_after": server_alive,
            "load": load,
            "abuse": abuse,
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
        },
    )
    met = p99 < 50 and worst < 250 and load["errors"] == 0 and server_alive
    print(
        f"/healthz p99 over the whole run {p99:.1f} ms (target < 50 ms), max {worst:.1f} ms "
        f"(target < 250 ms); normal traffic errors {load['errors']}; server alive: "
        f"{server_alive} -> target {'met' if met else 'NOT met'}"
    )
    print(
        f"machine load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if statistics.median(all_ms or [0.0]) > 50:
        print("note: even the median is over 50 ms: the machine itself is saturated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
