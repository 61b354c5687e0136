"""Bring an MLflow model registry into Airlock (``pip install 'airlock[mlflow]'``).

For each registered model (or the one asked for):

- each model version N becomes the release ``NAME@N.0.0``: its artifacts,
  downloaded through ``MlflowClient``, are the release's files (hashed and
  stored like any push); the source run's params are the lineage's training
  config, its metrics the release's metrics, its git commit the code ref, the
  previous version the parent; where it came from (model, version, run id,
  source URI, run user) is kept in the training config under ``mlflow``;
- each alias is moved to its current target, an audited move with the reason
  "imported from MLflow".

Idempotent: the manifest is built only from what MLflow stores, so importing
again pushes the same content (a no-op) and moves no alias that is already
right. An artifact changed under a version already imported is a ``Conflict``:
a version number is never reused for other content.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.core.limits import quoted
from airlock.core.manifest import CodeRef, Notes
from airlock.core.names import check_alias, check_name
from airlock.errors import (
    AirlockError,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyViolation,
    ServiceUnavailable,
)
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

ALIAS_REASON = "imported from MLflow"
_HINT = "install the extra: pip install 'airlock[mlflow]'"
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ImportedVersion:
    mlflow_model: str
    mlflow_version: int
    ref: str
    digest: str
    created: bool  # False: already imported with the same content
    run_id: str | None
    files: int
    bytes_total: int


@dataclass(frozen=True, slots=True)
class ImportedAlias:
    model: str
    alias: str
    ref: str
    moved: bool
    blocked: str | None = None  # a promotion policy refused the move: why


@dataclass(frozen=True, slots=True)
class MlflowImport:
    versions: tuple[ImportedVersion, ...]
    aliases: tuple[ImportedAlias, ...]

    @property
    def new_releases(self) -> int:
        return sum(v.created for v in self.versions)

    @property
    def moved_aliases(self) -> int:
        return sum(a.moved for a in self.aliases)

    @property
    def nothing_new(self) -> bool:
        return self.new_releases == 0 and self.moved_aliases == 0


def airlock_name(mlflow_name: str) -> str:
    """An MLflow model name as an Airlock model name: lower case, other characters as '-'."""
    name = re.sub(r"[^a-z0-9._-]+", "-", mlflow_name.lower()).strip("-._")
    if not name:
        raise InvalidInput(
            f"MLflow model {quoted(mlflow_name)} has no usable characters for an Airlock name",
            hint="import it alone with --model and give --name",
        )
    return check_name(name[:128].rstrip("-._"))


def import_mlflow(
    ws: Workspace,
    *,
    tracking_uri: str,
    actor: Actor,
    registry_uri: str | None = None,
    model: str | None = None,
    name: str | None = None,
    allow_pickle: bool = False,
    on_version: Callable[[str, int], None] | None = None,
) -> MlflowImport:
    """Import registered models, their versions and aliases from an MLflow tracking server."""
    if name is not None and model is None:
        raise InvalidInput("--name needs --model", hint="rename one model at a time")
    if name is not None:
        check_name(name)
    client = _client(tracking_uri, registry_uri)
    source = _Source(client, tracking_uri)
    models = [source.model(model)] if model is not None else source.models()
    targets: dict[str, str] = {}
    for m in models:
        target = name or airlock_name(m.name)
        if target in targets:
            raise Conflict(
                f"MLflow models {quoted(targets[target])} and {quoted(m.name)} both map to "
                f"the Airlock name {quoted(target)}",
                hint="import them one at a time with --model and --name",
            )
        targets[target] = m.name
    reg = Registry(ws)
    versions: list[ImportedVersion] = []
    aliases: list[ImportedAlias] = []
    for m in models:
        target = name or airlock_name(m.name)
        refs: dict[int, str] = {}
        parent: str | None = None
        for mv in source.versions(m.name):
            number = int(mv.version)
            if on_version is not None:
                on_version(m.name, number)
            imported = _import_version(
                ws, reg, source, mv, target, parent, actor=actor, allow_pickle=allow_pickle
            )
            versions.append(imported)
            refs[number] = imported.ref
            parent = imported.ref
        for alias, number in sorted((m.aliases or {}).items()):
            aliases.append(_move_alias(reg, target, alias, refs.get(int(number)), actor))
    return MlflowImport(tuple(versions), tuple(aliases))


def _import_version(
    ws: Workspace,
    reg: Registry,
    source: _Source,
    mv: Any,
    target: str,
    parent: str | None,
    *,
    actor: Actor,
    allow_pickle: bool,
) -> ImportedVersion:
    number = int(mv.version)
    version = f"{number}.0.0"
    run = source.run(mv.run_id) if mv.run_id else None
    params: dict[str, Any] = dict(run.data.params) if run is not None else {}
    metrics = (
        {k: float(v) for k, v in run.data.metrics.items() if math.isfinite(float(v))}
        if run is not None
        else {}
    )
    tags: dict[str, str] = dict(run.data.tags) if run is not None else {}
    provenance = {
        "registered_model": mv.name,
        "version": number,
        "run_id": mv.run_id,
        "source": mv.source,
        "user": tags.get("mlflow.user") or (run.info.user_id if run is not None else None),
    }
    code = None
    if tags.get("mlflow.source.git.commit") or tags.get("mlflow.source.git.repoURL"):
        code = CodeRef(
            repo=tags.get("mlflow.source.git.repoURL"), commit=tags.get("mlflow.source.git.commit")
        )
    summary = (mv.description or "").strip() or f"MLflow model {mv.name!r} version {number}."
    # A stable folder per version (emptied first): the push's hash cache keeps one entry
    # per file instead of one more per run.
    staging = ws.cache_dir / "mlflow-import" / f"{target}-{number}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        artifacts = source.download(mv, staging)
        try:
            result = reg.push(
                artifacts,
                name=target,
                version=version,
                actor=actor,
                notes=Notes(summary=summary),
                parent=parent,
                metrics=metrics,
                code=code,
                training_config={
                    "params": params,
                    "mlflow": {k: v for k, v in provenance.items() if v is not None},
                },
                allow_pickle=allow_pickle,
            )
        except Conflict as exc:
            raise Conflict(
                f"MLflow {mv.name!r} version {number} changed since it was imported as "
                f"{target}@{version}: {exc.message}",
                hint="an imported version is immutable in Airlock; register the change as a "
                "new MLflow version",
            ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportedVersion(
        mlflow_model=mv.name,
        mlflow_version=number,
        ref=result.ref,
        digest=result.digest,
        created=result.created,
        run_id=mv.run_id,
        files=result.files,
        bytes_total=result.bytes_total,
    )


def _move_alias(
    reg: Registry, model: str, alias: str, ref: str | None, actor: Actor
) -> ImportedAlias:
    if ref is None:  # pragma: no cover - MLflow refuses an alias to a version it lacks
        raise NotFound(f"MLflow alias {alias!r} of {model} points at a version not imported")
    check_alias(alias)
    try:
        result = reg.set_alias(alias, ref, actor=actor, reason=ALIAS_REASON)
    except PolicyViolation as exc:
        return ImportedAlias(model, alias, ref, moved=False, blocked=exc.message)
    return ImportedAlias(model, alias, ref, moved=result.moved)


# -- the MLflow side -------------------------------------------------------------------------
def _client(tracking_uri: str, registry_uri: str | None) -> Any:
    try:
        with _quiet():
            from mlflow import MlflowClient
    except ImportError as exc:
        raise ServiceUnavailable(
            f"importing from MLflow needs the mlflow package, which is not installed ({exc.name})",
            hint=_HINT,
        ) from exc
    with _quiet(), _translated("connect to", tracking_uri):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


class _Source:
    """The calls the importer makes to MLflow, each with its errors translated."""

    def __init__(self, client: Any, tracking_uri: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri

    def model(self, name: str) -> Any:
        with _quiet(), _translated(f"read registered model {name!r} from", self.tracking_uri):
            return self.client.get_registered_model(name)

    def models(self) -> list[Any]:
        found: list[Any] = []
        token = None
        with _quiet(), _translated("list registered models of", self.tracking_uri):
            while True:
                page = self.client.search_registered_models(max_results=_PAGE, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
        return sorted(found, key=lambda m: m.name)

    def versions(self, name: str) -> list[Any]:
        found: list[Any] = []
        token = None
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        with _quiet(), _translated(f"list the versions of {name!r} in", self.tracking_uri):
            while True:
                page = self.client.search_model_versions(
                    f"name = '{escaped}'", max_results=_PAGE, page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    break
        ready = [v for v in found if getattr(v, "status", "READY") in {None, "READY"}]
        return sorted(ready, key=lambda v: int(v.version))  # pending or failed: not yet

    def run(self, run_id: str) -> Any:
        with _quiet(), _translated(f"read run {run_id} from", self.tracking_uri):
            try:
                return self.client.get_run(run_id)
            except Exception as exc:
                if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
                    return None  # the run was deleted: the version still has its artifacts
                raise

    def download(self, mv: Any, dest: Path) -> Path:
        what = f"download the artifacts of {mv.name!r} version {mv.version} from"
        with _quiet(), _translated(what, self.tracking_uri), _no_progress_bar():
            import mlflow.artifacts

            uri = self.client.get_model_version_download_uri(mv.name, str(mv.version))
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dest), tracking_uri=self.tracking_uri
            )
        return Path(path)


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


@contextlib.contextmanager
def _translated(what: str, uri: str) -> Iterator[None]:
    """MLflow's exceptions as Airlock errors naming what was being done."""
    try:
        yield
    except AirlockError:
        raise
    except Exception as exc:
        code = _code(exc)
        text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(
                f"MLflow: {text}", hint="check --model against the MLflow model registry"
            ) from exc
        if code in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"}:
            raise InvalidInput(f"MLflow refused to {what} {uri}: {text}") from exc
        raise ServiceUnavailable(
            f"cannot {what} the MLflow tracking store {uri}: {text}",
            hint="check --tracking-uri (e.g. sqlite:///mlflow.db or http://host:5000)",
        ) from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's own deprecation noise (its SQLAlchemy models) is not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
