"""REST routes over releases, aliases, lineage and integrity."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query

from airlock.api.deps import ActorDep, RegistryDep
from airlock.api.schemas import (
    AliasHistoryOut,
    AliasMoveIn,
    AliasMoveOut,
    AliasOut,
    LineageEdge,
    LineageNode,
    LineageOut,
    ModelOut,
    ReleaseOut,
    ReleaseSummary,
    VerifyOut,
)
from airlock.catalog.releases import ReleaseRow
from airlock.errors import InvalidInput
from airlock.services.lineage import lineage

router = APIRouter(prefix="/api/v1", tags=["releases"])


def _summary(row: ReleaseRow, aliases: list[str]) -> dict[str, Any]:
    return {
        "ref": row.ref,
        "name": row.model,
        "version": row.version,
        "digest": row.digest,
        "author": row.author,
        "created_at": row.created_at,
        "total_size": row.total_size,
        "file_count": row.file_count,
        "parameters": row.parameters,
        "has_pickle": row.has_pickle,
        "aliases": aliases,
    }


@router.get("/models", response_model=list[ModelOut])
def list_models(reg: RegistryDep, _: ActorDep) -> list[ModelOut]:
    """Every model with its release count and aliases."""
    aliases = reg.aliases()
    return [
        ModelOut(
            name=m.name,
            releases=m.release_count,
            aliases={a.name: a.version for a in aliases if a.model == m.name},
        )
        for m in reg.models()
    ]


@router.get("/models/{model}/releases", response_model=list[ReleaseSummary])
def list_releases(model: str, reg: RegistryDep, _: ActorDep) -> list[ReleaseSummary]:
    """A model's releases, oldest version first."""
    by_release: dict[int, list[str]] = {}
    for a in reg.aliases(model):
        by_release.setdefault(a.release_id, []).append(a.name)
    return [
        ReleaseSummary.model_validate(_summary(r, by_release.get(r.id, [])))
        for r in reg.releases(model)
    ]


@router.get("/releases/{ref}", response_model=ReleaseOut)
def show_release(ref: str, reg: RegistryDep, _: ActorDep) -> ReleaseOut:
    """A release's manifest: files, components, lineage, metrics, notes."""
    view = reg.show(ref)
    return ReleaseOut.model_validate(
        {**_summary(view.row, list(view.aliases)), "manifest": view.manifest.to_json_dict()}
    )


@router.get("/releases/{ref}/diff")
def diff_release(
    ref: str,
    reg: RegistryDep,
    _: ActorDep,
    against: str = Query(description="the earlier release"),
) -> dict[str, Any]:
    """What changed from ``against`` to ``ref``."""
    diff, _old, _new = reg.diff(against, ref)
    return dataclasses.asdict(diff)


@router.get("/releases/{ref}/lineage", response_model=LineageOut)
def release_lineage(ref: str, reg: RegistryDep, _: ActorDep) -> LineageOut:
    """Datasets → release → components → parent, following parents back to the first."""
    walk = lineage(reg, ref)
    nodes, edges = walk.graph()
    return LineageOut(
        release=walk.release.ref,
        nodes=[LineageNode(id=n.id, kind=n.kind, label=n.label) for n in nodes],
        edges=[LineageEdge(source=e.source, target=e.target, label=e.label) for e in edges],
    )


@router.get("/models/{model}/aliases", response_model=list[AliasOut])
def list_aliases(model: str, reg: RegistryDep, _: ActorDep) -> list[AliasOut]:
    return [
        AliasOut(
            model=a.model,
            alias=a.name,
            version=a.version,
            updated_at=a.updated_at,
            updated_by=a.updated_by,
        )
        for a in reg.aliases(model)
    ]


@router.put("/models/{model}/aliases/{alias}", response_model=AliasMoveOut)
def move_alias(
    model: str, alias: str, body: AliasMoveIn, reg: RegistryDep, who: ActorDep
) -> AliasMoveOut:
    """Point an alias at a release of the same model (audited; policy-gated)."""
    ref = body.release if "@" in body.release or body.release.startswith("sha256:") else None
    ref = ref or f"{model}@{body.release}"
    row = reg.resolve(ref)
    if row.model != model:
        raise InvalidInput(
            f"{row.ref} is not a release of {model}", hint=f"give a version of {model}"
        )
    result = reg.set_alias(alias, row.ref, actor=who, reason=body.reason)
    return AliasMoveOut(
        model=result.model,
        alias=result.alias,
        from_version=result.from_version,
        to_version=result.to_version,
        moved=result.moved,
    )


@router.get("/models/{model}/aliases/{alias}/history", response_model=list[AliasHistoryOut])
def alias_history(model: str, alias: str, reg: RegistryDep, _: ActorDep) -> list[AliasHistoryOut]:
    return [
        AliasHistoryOut.model_validate(dataclasses.asdict(m))
        for m in reg.alias_history(model, alias)
    ]


@router.post("/verify", response_model=VerifyOut)
def verify_store(
    reg: RegistryDep,
    _: ActorDep,
    ref: str | None = Query(None, description="only this release (default: the whole store)"),
) -> VerifyOut:
    """Re-hash stored blobs; name damaged or missing ones and the releases using them."""
    report = reg.verify(ref)
    return VerifyOut(
        ok=report.ok,
        checked=report.checked,
        bytes=report.bytes,
        damaged=report.damaged,
        missing=report.missing,
        tampered=report.tampered,
    )
