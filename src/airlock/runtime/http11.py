"""A lean keep-alive HTTP/1.1 client pool for calling upstream model servers.

Why not httpx for the hot path: measured on loopback (``bench/gateway.py``),
``httpx.AsyncClient`` spends ~0.4-0.5 ms of CPU per request in URL parsing,
model objects and httpcore's anyio-based pool, and its pool re-scans every
queued request on each release, so a burst makes it fall behind and latency
collapses (500 RPS on 2 cores: p99 of seconds). This pool does only what an
upstream call needs — keep-alive connections reused last-in-first-out,
``Content-Length`` and chunked bodies, a cap on open connections, idle expiry,
TLS for ``https://`` — at ~40 µs per request. ``"http_client": "httpx"`` in a
release's config selects httpx instead (e.g. to go through an HTTP proxy).

A request on a kept-alive connection that the server closed meanwhile is
retried once on a fresh connection, but only if no byte of a response arrived
(the request was then never processed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from airlock.core.masking import safe_url

_LIMIT = 1 << 22  # longest header block / SSE line we accept


class HTTPError(Exception):
    """The connection failed (refused, reset, closed early, malformed response)."""


class HTTPTimeout(HTTPError):
    pass


class _Conn:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Response:
    """Status, lower-case headers and the body, read as a whole or line by line."""

    def __init__(self, status: int, headers: dict[str, str], conn: _Conn) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None and not self._chunked else None
        self.complete = False

    async def aread(self) -> bytes:
        parts = [piece async for piece in self.iter_bytes()]
        return b"".join(parts)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        if self._chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # (no trailers expected) the last CRLF
                    break
                data = await reader.readexactly(size + 2)
                yield data[:-2]
        elif self._remaining is not None:
            if self._remaining:
                yield await reader.readexactly(self._remaining)
        else:  # no length: the body ends when the server closes
            while chunk := await reader.read(65536):
                yield chunk
            self.headers["connection"] = "close"
        self.complete = True

    async def lines(self) -> AsyncIterator[str]:
        buffer = b""
        async for data in self.iter_bytes():
            buffer += data
            while True:
                cut = buffer.find(b"\n")
                if cut < 0:
                    break
                line, buffer = buffer[:cut], buffer[cut + 1 :]
                yield line.rstrip(b"\r").decode("utf-8", "replace")
        if buffer:
            yield buffer.decode("utf-8", "replace")

    @property
    def reusable(self) -> bool:
        return self.complete and self.headers.get("connection", "").lower() != "close"


class HTTPPool:
    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        max_connections: int = 256,
        keepalive_s: float = 4.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {safe_url(base_url)!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        netloc = self.host if parts.port is None else f"{self.host}:{parts.port}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head_tail = f"Host: {netloc}\r\n{extra}".encode("latin-1")
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self._closed = False

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._ssl, limit=_LIMIT
                )
        except TimeoutError as exc:
            raise HTTPTimeout(f"connecting to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise HTTPError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.used < self.keepalive_s and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Conn, response: Response) -> None:
        if response.reusable and not self._closed:
            conn.used = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    def _request_bytes(self, method: str, path: str, body: bytes) -> bytes:
        return (
            f"{method} {self.prefix}{path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n".encode()
            + self._head_tail
            + b"\r\n"
            + body
        )

    async def _send(self, conn: _Conn, data: bytes) -> Response:
        conn.writer.write(data)
        head = await conn.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise HTTPError(f"malformed status line {lines[0]!r}") from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return Response(status, headers, conn)

    @asynccontextmanager
    async def stream(self, method: str, path: str, body: bytes) -> AsyncIterator[Response]:
        """Send a request; the response body is read inside the ``async with``."""
        if self._closed:
            raise HTTPError("the connection pool is closed")
        data = self._request_bytes(method, path, body)
        async with self._slots:
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                response = await self._send(conn, data)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.close()
                if not reused:
                    raise HTTPError(
                        f"{type(exc).__name__} talking to {self.host}:{self.port}"
                    ) from exc
                conn = await self._connect()  # the server closed a kept-alive connection
                try:
                    response = await self._send(conn, data)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc2:
                    conn.close()
                    raise HTTPError(
                        f"{type(exc2).__name__} talking to {self.host}:{self.port}"
                    ) from exc2
            except BaseException:
                conn.close()
                raise
            try:
                yield response
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.close()
                raise HTTPError(
                    f"{type(exc).__name__} reading from {self.host}:{self.port}"
                ) from exc
            except BaseException:
                conn.close()
                raise
            self._give_back(conn, response)

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        async with self.stream(method, path, body) as response:
            return response.status, await response.aread()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()


__all__ = ["HTTPError", "HTTPPool", "HTTPTimeout", "Response"]
