"""What every command shares: the consoles, opening the workspace, turning errors into one line."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console, ConsoleDimensions

from airlock.errors import AirlockError

if TYPE_CHECKING:
    from pathlib import Path

    from rich.progress import Progress, TaskID

    from airlock.config import Settings
    from airlock.core.request_limits import GatewayLimits
    from airlock.services.identity import Actor
    from airlock.services.workspace import Workspace

# Command modules import only typer, rich's console and the standard library at
# module level; everything heavier (SQLAlchemy, numpy, FastAPI...) is imported
# inside the command that needs it, so `airlock --help` and quick commands start
# fast. tests/cli/test_cli_startup.py holds this line.

PIPE_WIDTH = 100_000
"""The width when writing to a pipe or a file: no wrapping and no cut cells, so digests,
reasons and URLs reach ``grep`` and ``awk`` whole. ``COLUMNS`` still wins when set."""


class PipeFriendlyConsole(Console):
    """A Rich console that never wraps or truncates when its output is not a terminal.

    Rich otherwise assumes 80 columns for a pipe. Decided at each print, so the same
    console serves a terminal and a redirected run (and Typer's test runner).
    """

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS"):
            return ConsoleDimensions(PIPE_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console: Console = PipeFriendlyConsole(highlight=False)
err_console: Console = PipeFriendlyConsole(stderr=True, highlight=False)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Limit = Annotated[int, typer.Option(help="At most this many, newest first (0 for all).")]


def print_json(value: Any) -> None:
    """JSON on stdout, for scripts: times as ISO text, nothing cut."""
    import json

    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    import dataclasses
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def limited(rows: list[Any], limit: int) -> list[Any]:
    """The first ``limit`` rows (all for 0)."""
    return rows if limit <= 0 else rows[:limit]


P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print an ``AirlockError`` as ``error: ...`` + ``hint: ...`` and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AirlockError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
            if exc.hint:
                err_console.print(f"[dim]hint:[/] {exc.hint}", soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing was half-written")
            raise typer.Exit(code=130) from None

    return wrapper


def settings() -> Settings:
    from airlock.config import Settings

    return Settings.from_env()


@contextmanager
def workspace(*, create: bool = False) -> Iterator[Workspace]:
    from airlock.cli.backend import remote_config
    from airlock.services.workspace import Workspace

    remote = remote_config()
    if remote is not None:  # a command that runs next to the catalog: say which one it uses
        err_console.print(
            f"[yellow]note:[/] this command works on the local workspace, not on {remote.url}: "
            "it runs next to the catalog and the store (init, serve, gateway, rollout "
            "controller, db, gc, import, export, verify --repair); every other command "
            "works remotely",
            soft_wrap=True,
        )
    ws = Workspace.open(settings(), create=create)
    try:
        yield ws
    finally:
        ws.close()


def actor(ws: Workspace) -> Actor:
    """The caller, authenticated by AIRLOCK_TOKEN or the workspace's token file."""
    from airlock.errors import Forbidden
    from airlock.services.tokens import TOKEN_ENV, Tokens, find_token

    secret = find_token(os.environ, ws.home)
    if secret is None:
        raise Forbidden(
            "no API token: this command changes the catalog and needs one",
            hint=f"set {TOKEN_ENV} (ask an admin: `airlock token create`), or run "
            "`airlock init` to create the workspace owner's admin token",
        )
    return Tokens(ws).authenticate(secret)


def gateway_limits(path: Path | None) -> GatewayLimits:
    """The gateway's request limits: the defaults, or a ``--limits`` YAML file."""
    from airlock.core.request_limits import GatewayLimits, parse_limits
    from airlock.errors import InvalidInput, NotFound

    if path is None:
        return GatewayLimits()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no limits file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the limits file {path}: {exc}") from exc
    return parse_limits(text)


class ByteProgress:
    """A progress bar on stderr that appears once the work's size is known: bytes and rate,
    or with ``counting`` ("events") a count of those, cleared when done.

    ``start(total)`` shows it (services call it when validation has passed and the
    bytes are counted), so an error found first prints alone, without an empty bar.
    """

    def __init__(self, description: str, *, quiet: bool = False, counting: str = "") -> None:
        self.description = description
        self.disabled = quiet or bool(os.environ.get("AIRLOCK_NO_PROGRESS"))
        self.counting = counting  # "" for bytes, else what is counted ("events"): a transient bar
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ByteProgress:
        return self

    def start(self, total: int | None) -> None:
        if self.disabled or self._bar is not None or (self.counting and not total):
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        counted: tuple[ProgressColumn, ...] = (
            (MofNCompleteColumn(), TextColumn(self.counting))
            if self.counting
            else (DownloadColumn(binary_units=True), TransferSpeedColumn())
        )
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            *counted,
            TimeRemainingColumn(),
            console=err_console,
            transient=bool(self.counting),
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total)

    def advance(self, n: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def human_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def human_count(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
