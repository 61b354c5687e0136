"""Custom scorers, safely: only registered ones, each call in a separate process under a time limit.

A suite names scorers; :func:`check_scorers` accepts only the built-ins
(:mod:`airlock.core.scorers`) and entry points of the ``airlock.scorers`` group (what
an admin installed), and refuses anything else up front — in particular a
``module:function`` path, which would let any author run any function of the
server (``threading:settrace`` once made every later request thread hang).
Checking reads package metadata only; nothing is imported in the server.

:class:`ScorerProcess` then runs the calls in one child process (started on first
use, with ``spawn``: a fresh interpreter that shares nothing with the server's
threads; it imports the scorers before it says it is ready, so start-up does not
count against a call), one call at a time, each within ``timeout_s``. A scorer that raises, hangs
or kills its process fails its case (:class:`~airlock.core.scorers.ScorerError`);
the child is replaced and the run goes on. The server's own threads never execute
scorer code.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Sequence
from importlib.metadata import entry_points
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from airlock.core.request_limits import clip
from airlock.core.scorers import BUILTIN_SCORERS, Scorer, ScorerError, ScorerInput
from airlock.errors import InvalidInput

SCORER_GROUP = "airlock.scorers"
DEFAULT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 120.0  # a fresh interpreter importing the scorers' packages


def registered_scorers() -> list[str]:
    """Every scorer a suite may name: the built-ins and the installed entry points."""
    return sorted({*BUILTIN_SCORERS, *(ep.name for ep in entry_points(group=SCORER_GROUP))})


def check_scorers(names: Sequence[str]) -> None:
    """Refuse any name that is not a registered scorer (reads metadata, imports nothing)."""
    if not names:
        return
    known = registered_scorers()
    for name in names:
        if name in known:
            continue
        path = ":" in name or "." in name
        raise InvalidInput(
            f"no scorer named {clip(name)!r}"
            + (": a suite names registered scorers, not Python functions" if path else "")
            + f" (registered: {', '.join(known)})",
            hint=f"use a built-in scorer, or ask an admin to install a package that provides "
            f"it as an entry point in the {SCORER_GROUP!r} group",
        )


class ScorerProcess:
    """Runs registered scorers in a child process, each call within ``timeout_s``."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None
        self._names: tuple[str, ...] = ()

    def scorers(self, names: Sequence[str]) -> dict[str, Scorer]:
        """Callables for ``names`` (checked first) that score in the child process."""
        check_scorers(names)
        self._names = tuple(dict.fromkeys((*self._names, *names)))
        return {name: functools.partial(self.score, name) for name in names}

    def score(self, name: str, x: ScorerInput) -> float:
        conn = self._ensure()
        try:
            conn.send((name, x.output, x.prompt, x.reference, dict(x.args)))
            if not conn.poll(self.timeout_s):
                self._stop(kill=True)
                raise ScorerError(f"{name} did not finish within {self.timeout_s:g} s")
            ok, value = conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self._stop(kill=True)
            raise ScorerError(f"{name} ended its process") from None
        if not ok:
            raise ScorerError(str(value))
        return float(value)

    def _ensure(self) -> Connection:
        if self._conn is None or self._process is None or not self._process.is_alive():
            self._stop(kill=True)
            parent, child = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(child, self._names), name="airlock-scorers", daemon=True
            )
            process.start()
            child.close()
            self._process, self._conn = process, parent
            try:
                ready = parent.poll(START_TIMEOUT_S) and parent.recv() == "ready"
            except (EOFError, OSError):
                ready = False
            if not ready:
                self._stop(kill=True)
                raise ScorerError(f"the scorer process did not start within {START_TIMEOUT_S:g} s")
        return self._conn

    def _stop(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            if not kill:
                try:
                    conn.send(None)
                except OSError:
                    kill = True
            conn.close()
        if process is not None:
            if kill:
                process.kill()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
            process.close()

    def close(self) -> None:
        self._stop(kill=False)

    def __enter__(self) -> ScorerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _serve(conn: Connection, names: Sequence[str]) -> None:
    """The child: load the scorers, then score what the parent sends until it sends None."""
    loaded: dict[str, Scorer] = {}
    for name in names:
        try:
            loaded[name] = _load(name)
        except Exception:  # reported when the scorer is called
            continue
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        name, output, prompt, reference, args = message
        try:
            scorer = loaded.get(name) or _load(name)
            loaded[name] = scorer
            result: tuple[bool, Any] = (
                True,
                float(scorer(ScorerInput(output, prompt, reference, args))),
            )
        except Exception as exc:  # reported to the parent: the check fails with it
            result = (False, f"{type(exc).__name__}: {clip(str(exc), 300)}")
        conn.send(result)


def _load(name: str) -> Scorer:
    if name in BUILTIN_SCORERS:
        return BUILTIN_SCORERS[name]
    for ep in entry_points(group=SCORER_GROUP):
        if ep.name == name:
            fn = ep.load()
            if not callable(fn):
                raise TypeError(f"the entry point {name} is not callable")
            scorer: Scorer = fn
            return scorer
    raise LookupError(f"no scorer named {name!r} is installed")


__all__ = ["SCORER_GROUP", "ScorerProcess", "check_scorers", "registered_scorers"]
