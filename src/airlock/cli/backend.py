"""Where commands send their work: the local services, or an Airlock server over REST.

``open_backend()`` picks the transport once per command: with ``AIRLOCK_URL`` set
(or a server stored by ``airlock login URL``) every call goes to that server
through the SDK (:class:`airlock.client.Client`), with ``AIRLOCK_TOKEN`` or the
stored token; otherwise the workspace is opened and the services are called.
Both sides of :class:`Backend` take the same arguments and return the same
frozen values, and errors come back as the same ``AirlockError`` classes with the
same messages, so a command renders either one identically.

Every command works remotely except those that run next to the catalog and the store:
``init``, ``serve``, ``gateway``, ``rollout controller``, ``db``, ``gc``, ``import``,
``export`` and ``verify --repair``. The other areas have their own two sides, opened the
same way through :func:`open_side`: governance (``cli/governance_backend.py``), rollouts,
drills and services (``cli/rollout_backend.py``), tokens and gateway keys
(``cli/access_backend.py``), the audit chain (``cli/audit_backend.py``: the chain is
downloaded and recomputed on this machine), feedback, judges and webhooks
(``cli/feedback_backend.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airlock.core.paging import Page

if TYPE_CHECKING:
    from airlock.cli.governance_backend import GovernanceSide
    from airlock.client import Client
    from airlock.core.diff import ManifestDiff
    from airlock.core.manifest import Manifest
    from airlock.core.records import Alias, AliasMove
    from airlock.services.audit_views import Event, EventFilter
    from airlock.services.ingest import SourceFile
    from airlock.services.promotion import AliasResult
    from airlock.services.registry import PullResult, PushResult, ReleaseView, VerifyReport
    from airlock.services.serving import ServiceView
    from airlock.services.workspace import Workspace

URL_ENV = "AIRLOCK_URL"
CONFIG_ENV = "AIRLOCK_CONFIG"  # the login file (default: ~/.config/airlock/remote.json)
ProgressFn = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelListing:
    """One line of ``airlock ls``: a model, its release count, its aliases (alias -> version)."""

    name: str
    releases: int
    aliases: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ReleaseListing:
    """One line of ``airlock ls MODEL``."""

    ref: str
    version: str
    digest: str
    created_at: datetime
    author: str
    total_size: int
    parameters: int | None
    has_pickle: bool
    aliases: tuple[str, ...]


class Backend(Protocol):
    """What the registry commands call; local and remote alike."""

    remote: bool

    def push(
        self,
        source: Path | Sequence[SourceFile],
        *,
        name: str,
        version: str,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
        **fields: Any,
    ) -> PushResult: ...

    def pull(
        self, ref: str, dest: Path, *, on_start: ProgressFn | None, on_bytes: ProgressFn | None
    ) -> PullResult: ...

    def models(self, *, limit: int = 50, cursor: str | None = None) -> Page[ModelListing]: ...

    def releases(
        self, model: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ReleaseListing]: ...

    def show(self, ref: str) -> ReleaseView: ...

    def diff(self, old: str, new: str) -> tuple[ManifestDiff, Manifest, Manifest]: ...

    def verify(
        self, ref: str | None, *, on_start: ProgressFn | None, on_bytes: ProgressFn | None
    ) -> VerifyReport: ...

    def aliases(self, model: str | None) -> list[Alias]:
        """Aliases (of one model, or all); ``release_id`` is 0 remotely (the API omits it)."""
        ...

    def alias_history(self, model: str | None, alias: str | None) -> list[AliasMove]: ...

    def alias_history_page(
        self, model: str | None, alias: str | None, *, limit: int, cursor: str | None
    ) -> Page[AliasMove]: ...

    def set_alias(self, alias: str, ref: str, *, reason: str) -> AliasResult: ...

    def services(self) -> list[ServiceView]: ...

    def audit_events(self, where: EventFilter, *, limit: int | None) -> tuple[Event, ...]:
        """Matching audit events, newest first, at most ``limit`` (None: all)."""
        ...

    def governance(self) -> GovernanceSide:
        """The same side's governance: approvals, evaluations, signatures (show, diff, verify)."""
        ...


# -- choosing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    url: str
    token: str | None


def config_path() -> Path:
    given = os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "airlock" / "remote.json"


def remote_config() -> RemoteConfig | None:
    """The server to talk to: ``AIRLOCK_URL`` (+ ``AIRLOCK_TOKEN``), else the login file."""
    from airlock.config import TOKEN_ENV  # not services.tokens: no catalog for a local ls

    url = os.environ.get(URL_ENV)
    if url:
        return RemoteConfig(url, os.environ.get(TOKEN_ENV) or _stored().get("token"))
    stored = _stored()
    if stored.get("url"):
        return RemoteConfig(str(stored["url"]), os.environ.get(TOKEN_ENV) or stored.get("token"))
    return None


def _stored() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_login(url: str, token: str) -> Path:
    """Store the server and token for later commands in a 0600 file."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": url.rstrip("/"), "token": token}, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def forget_login() -> bool:
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True


@contextmanager
def open_side(local: Callable[[Workspace], T], remote: Callable[[Client], T]) -> Iterator[T]:
    """``remote(client)`` when a server is configured, else ``local(workspace)``.

    The one place a command's transport is chosen: each area of the CLI (the
    registry here, governance, rollouts, access) has a local and a remote side with
    the same methods and values, and opens the right one through this.
    """
    config = remote_config()
    if config is not None:
        from airlock.client import Client

        with Client(config.url, config.token, timeout=300.0) as client:
            yield remote(client)
        return
    from airlock.cli.common import workspace

    with workspace() as ws:
        yield local(ws)


@contextmanager
def open_backend() -> Iterator[Backend]:
    """The remote backend when a server is configured, else the local workspace's."""
    local: Callable[[Workspace], Backend] = LocalBackend
    remote: Callable[[Client], Backend] = RemoteBackend
    with open_side(local, remote) as backend:
        yield backend


# -- local --------------------------------------------------------------------------------


class LocalBackend:
    remote = False

    def __init__(self, ws: Workspace) -> None:
        from airlock.services.registry import Registry

        self.ws = ws
        self.registry = Registry(ws)

    def push(
        self,
        source: Path | Sequence[SourceFile],
        *,
        name: str,
        version: str,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
        **fields: Any,
    ) -> PushResult:
        from airlock.cli.common import actor

        return self.registry.push(
            source,
            name=name,
            version=version,
            actor=actor(self.ws),
            on_start=on_start,
            on_bytes=on_bytes,
            **fields,
        )

    def pull(
        self, ref: str, dest: Path, *, on_start: ProgressFn | None, on_bytes: ProgressFn | None
    ) -> PullResult:
        if on_start is not None:
            on_start(self.registry.resolve(ref).total_size)
        return self.registry.pull(ref, dest, on_bytes=on_bytes)

    def models(self, *, limit: int = 50, cursor: str | None = None) -> Page[ModelListing]:
        page = self.registry.model_page(limit=limit, cursor=cursor)
        aliases = self.registry.aliases() if page.items else []
        return page.map(
            lambda m: ModelListing(
                m.name,
                m.release_count,
                tuple((a.name, a.version) for a in aliases if a.model == m.name),
            )
        )

    def releases(
        self, model: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ReleaseListing]:
        page = self.registry.release_page(model, limit=limit, cursor=cursor)
        by_release: dict[int, list[str]] = {}
        for a in self.registry.aliases(model):
            by_release.setdefault(a.release_id, []).append(a.name)
        return page.map(
            lambda r: ReleaseListing(
                r.ref,
                r.version,
                r.digest,
                r.created_at,
                r.author,
                r.total_size,
                r.parameters,
                r.has_pickle,
                tuple(by_release.get(r.id, [])),
            )
        )

    def show(self, ref: str) -> ReleaseView:
        return self.registry.show(ref)

    def diff(self, old: str, new: str) -> tuple[ManifestDiff, Manifest, Manifest]:
        return self.registry.diff(old, new)

    def verify(
        self, ref: str | None, *, on_start: ProgressFn | None, on_bytes: ProgressFn | None
    ) -> VerifyReport:
        return self.registry.verify(ref, on_start=on_start, on_bytes=on_bytes)

    def aliases(self, model: str | None) -> list[Alias]:
        return self.registry.aliases(model)

    def alias_history(self, model: str | None, alias: str | None) -> list[AliasMove]:
        return self.registry.alias_history(model, alias)

    def alias_history_page(
        self, model: str | None, alias: str | None, *, limit: int, cursor: str | None
    ) -> Page[AliasMove]:
        return self.registry.alias_history_page(model, alias, limit=limit, cursor=cursor)

    def set_alias(self, alias: str, ref: str, *, reason: str) -> AliasResult:
        from airlock.cli.common import actor

        return self.registry.set_alias(alias, ref, actor=actor(self.ws), reason=reason)

    def services(self) -> list[ServiceView]:
        from airlock.services.serving import Serving

        return Serving(self.ws).all()

    def audit_events(self, where: EventFilter, *, limit: int | None) -> tuple[Event, ...]:
        from airlock.services.audit_views import AuditLog

        return AuditLog(self.ws).events(where, limit=limit, newest_first=True)

    def governance(self) -> GovernanceSide:
        from airlock.cli.governance_backend import LocalGovernance

        return LocalGovernance(self.ws)


# -- remote --------------------------------------------------------------------------------


class RemoteBackend:
    """The same calls through the REST API; JSON parsed back into the services' values."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client

    def push(
        self,
        source: Path | Sequence[SourceFile],
        *,
        name: str,
        version: str,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
        **fields: Any,
    ) -> PushResult:
        from airlock.errors import InvalidInput

        if fields.pop("repair", False):
            raise InvalidInput(
                "--repair works on the server's own store only",
                hint="run `airlock verify --repair` on the server",
            )
        return self.client.push(
            source, name=name, version=version, on_start=on_start, on_bytes=on_bytes, **fields
        )

    def pull(
        self, ref: str, dest: Path, *, on_start: ProgressFn | None, on_bytes: ProgressFn | None
    ) -> PullResult:
        return self.client.pull(ref, dest, on_start=on_start, on_bytes=on_bytes)

    def models(self, *, limit: int = 50, cursor: str | None = None) -> Page[ModelListing]:
        items, after = self.client.page("/api/v1/models", limit=limit, cursor=cursor)
        listings = tuple(
            ModelListing(m["name"], int(m["releases"]), tuple(dict(m["aliases"]).items()))
            for m in items
        )
        return Page(listings, after)

    def releases(
        self, model: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ReleaseListing]:
        path = f"/api/v1/models/{model}/releases"
        items, after = self.client.page(path, limit=limit, cursor=cursor)
        listings = tuple(
            ReleaseListing(
                r["ref"],
                r["version"],
                r["digest"],
                datetime.fromisoformat(r["created_at"]),
                r["author"],
                int(r["total_size"]),
                r["parameters"],
                bool(r["has_pickle"]),
                tuple(r["aliases"]),
            )
            for r in items
        )
        return Page(listings, after)

    def show(self, ref: str) -> ReleaseView:
        from airlock.core.digest import Digest
        from airlock.core.records import Release
        from airlock.services.registry import ReleaseView

        out = self.client.release(ref)
        manifest = _manifest(out["manifest"], out["digest"])
        row = Release(
            id=0,  # the server's row id: not part of the API
            model=out["name"],
            version=out["version"],
            digest=Digest(out["digest"]),
            content_key=manifest.content_key(),
            author=out["author"],
            created_at=datetime.fromisoformat(out["created_at"]),
            total_size=int(out["total_size"]),
            file_count=int(out["file_count"]),
            parameters=out["parameters"],
            has_pickle=bool(out["has_pickle"]),
            manifest_json=manifest.canonical().decode("utf-8"),
        )
        return ReleaseView(row, manifest, tuple(out["aliases"]))

    def diff(self, old: str, new: str) -> tuple[ManifestDiff, Manifest, Manifest]:
        from airlock.core.diff import diff_manifests

        a, b = self.show(old).manifest, self.show(new).manifest
        return diff_manifests(a, b), a, b

    def verify(
        self, ref: str | None, *, on_start: ProgressFn | None, on_bytes: ProgressFn | None
    ) -> VerifyReport:
        from airlock.services.registry import VerifyReport

        out = self.client.verify_store(ref)
        return VerifyReport(
            int(out["checked"]),
            int(out["bytes"]),
            dict(out["damaged"]),
            dict(out["missing"]),
            dict(out["tampered"]),
        )

    def aliases(self, model: str | None) -> list[Alias]:
        from airlock.core.records import Alias

        models = [model] if model else [m["name"] for m in self.client.models()]
        return [
            Alias(
                model=a["model"],
                name=a["alias"],
                release_id=0,
                version=a["version"],
                updated_at=datetime.fromisoformat(a["updated_at"]),
                updated_by=a["updated_by"],
            )
            for name in models
            for a in self.client.aliases(name)
        ]

    def alias_history(self, model: str | None, alias: str | None) -> list[AliasMove]:

        models = [model] if model else [m["name"] for m in self.client.models()]
        pairs = [
            (name, a)
            for name in models
            for a in ([alias] if alias else [x["alias"] for x in self.client.aliases(name)])
        ]
        moves = [_alias_move(m) for name, a in pairs for m in self.client.alias_history(name, a)]
        return sorted(moves, key=lambda m: (m.at, m.event_seq or 0))

    def alias_history_page(
        self, model: str | None, alias: str | None, *, limit: int, cursor: str | None
    ) -> Page[AliasMove]:
        if model and alias:  # one alias: the server pages it
            path = f"/api/v1/models/{model}/aliases/{alias}/history"
            items, after = self.client.page(path, limit=limit, cursor=cursor)
            return Page(tuple(_alias_move(m) for m in items), after)
        moves = self.alias_history(model, alias)  # several aliases, merged here by time
        start = int(cursor) if cursor and cursor.isdigit() else 0
        more = start + limit < len(moves)
        return Page(tuple(moves[start : start + limit]), str(start + limit) if more else None)

    def set_alias(self, alias: str, ref: str, *, reason: str) -> AliasResult:
        from airlock.core.refs import parse_ref
        from airlock.services.promotion import AliasResult

        model = parse_ref(ref).name or ref
        out = self.client.set_alias(model, alias, ref, reason=reason)
        result: AliasResult = _value(AliasResult, out)
        return result

    def services(self) -> list[ServiceView]:
        from airlock.cli.rollout_backend import service_value

        return [service_value(out) for out in self.client.services()]

    def audit_events(self, where: EventFilter, *, limit: int | None) -> tuple[Event, ...]:
        from airlock.services.audit_views import Event

        found: list[Event] = []
        cursor = 0
        while True:  # pages oldest first; the newest `limit` are kept
            page = self.client.events(
                action=where.action,
                actor=where.actor,
                subject=where.subject,
                since=where.since,
                after_seq=cursor,
                limit=1000,
            )
            found.extend(_value(Event, e) for e in page["events"])
            if limit is not None:
                del found[:-limit]
            if page.get("next_after_seq") is None or not page["events"]:
                break
            cursor = int(page["next_after_seq"])
        return tuple(reversed(found))

    def governance(self) -> GovernanceSide:
        from airlock.cli.governance_backend import RemoteGovernance

        return RemoteGovernance(self.client)


def _alias_move(m: Mapping[str, Any]) -> AliasMove:
    from airlock.core.records import AliasMove

    return AliasMove(
        model=m["model"],
        alias=m["alias"],
        from_version=m["from_version"],
        to_version=m["to_version"],
        actor=m["actor"],
        reason=m["reason"],
        at=datetime.fromisoformat(m["at"]),
        event_seq=m["event_seq"],
    )


def _manifest(data: Mapping[str, Any], digest: str) -> Manifest:
    """A manifest from JSON, checked against the digest the server named (IntegrityError)."""
    from airlock.core.manifest import Manifest
    from airlock.errors import IntegrityError

    manifest = Manifest.model_validate(data)
    if manifest.digest() != digest:
        raise IntegrityError(
            f"the manifest of {manifest.ref} the server sent does not hash to {digest}",
            hint="run `airlock verify` on the server",
        )
    return manifest


def _value(cls: Any, data: Mapping[str, Any]) -> Any:
    """A frozen dataclass from the API body derived from it (``api/derive.py``)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
