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
from airlock.core.diff import describe_component
from airlock.core.digest import short
from airlock.core.records import Release
from airlock.errors import InvalidInput, NotFound
from airlock.services.registry import Registry

router = APIRouter(prefix="/api/v1", tags=["releases"])


@router.get("/models", response_model=list[ModelOut])
def list_models(reg: RegistryDep, _: ActorDep) -> list[ModelOut]:
    """Every model with its release count and aliases."""
    aliases = reg.aliases()
    return [
        ModelOut.of(m, aliases={a.name: a.version for a in aliases if a.model == m.name})
        for m in reg.models()
    ]


@router.get("/models/{model}/releases", response_model=list[ReleaseSummary])
def list_releases(model: str, reg: RegistryDep, _: ActorDep) -> list[ReleaseSummary]:
    """A model's releases, oldest version first."""
    by_release: dict[int, list[str]] = {}
    for a in reg.aliases(model):
        by_release.setdefault(a.release_id, []).append(a.name)
    return [ReleaseSummary.of(r, aliases=by_release.get(r.id, [])) for r in reg.releases(model)]


@router.get("/releases/{ref}", response_model=ReleaseOut)
def show_release(ref: str, reg: RegistryDep, _: ActorDep) -> ReleaseOut:
    """A release's manifest: files, components, lineage, metrics, notes."""
    view = reg.show(ref)
    return ReleaseOut.of(
        view.row, aliases=list(view.aliases), manifest=view.manifest.to_json_dict()
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
    nodes: dict[str, LineageNode] = {}
    edges: list[LineageEdge] = []
    start = reg.resolve(ref)
    _walk(reg, start, nodes, edges, seen=set())
    return LineageOut(release=start.ref, nodes=list(nodes.values()), edges=edges)


def _walk(
    reg: Registry,
    row: Release,
    nodes: dict[str, LineageNode],
    edges: list[LineageEdge],
    seen: set[str],
) -> None:
    if row.ref in seen or len(seen) > 50:
        return
    seen.add(row.ref)
    m = row.manifest()
    rid = f"release:{row.ref}"
    nodes[rid] = LineageNode(id=rid, kind="release", label=f"{row.ref} {short(row.digest)}")
    for d in m.lineage.datasets:
        did = f"dataset:{d.name}:{d.digest or d.uri}"
        nodes[did] = LineageNode(id=did, kind="dataset", label=d.name)
        edges.append(LineageEdge(source=did, target=rid, label="trained on"))
    if m.lineage.code and m.lineage.code.commit:
        cid = f"code:{m.lineage.code.commit}"
        nodes[cid] = LineageNode(id=cid, kind="code", label=m.lineage.code.commit[:12])
        edges.append(LineageEdge(source=cid, target=rid, label="code"))
    for role, comp in m.components.items():
        if comp.ref:
            target = f"release:{comp.ref}"
            nodes.setdefault(target, LineageNode(id=target, kind="release", label=comp.ref))
        else:
            target = f"component:{row.ref}:{role}"
            nodes[target] = LineageNode(
                id=target, kind="component", label=f"{role}: {describe_component(comp)}"
            )
        edges.append(LineageEdge(source=rid, target=target, label=role))
    if m.lineage.parent:
        pid = f"release:{m.lineage.parent}"
        edges.append(LineageEdge(source=rid, target=pid, label="parent"))
        try:
            parent = reg.resolve(m.lineage.parent)
        except NotFound:
            nodes.setdefault(pid, LineageNode(id=pid, kind="release", label=m.lineage.parent))
            return
        _walk(reg, parent, nodes, edges, seen)


@router.get("/models/{model}/aliases", response_model=list[AliasOut])
def list_aliases(model: str, reg: RegistryDep, _: ActorDep) -> list[AliasOut]:
    return [AliasOut.of(a) for a in reg.aliases(model)]


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
    return AliasMoveOut.of(result)


@router.get("/models/{model}/aliases/{alias}/history", response_model=list[AliasHistoryOut])
def alias_history(model: str, alias: str, reg: RegistryDep, _: ActorDep) -> list[AliasHistoryOut]:
    return [AliasHistoryOut.of(m) for m in reg.alias_history(model, alias)]


@router.post("/verify", response_model=VerifyOut)
def verify_store(
    reg: RegistryDep,
    _: ActorDep,
    ref: str | None = Query(None, description="only this release (default: the whole store)"),
) -> VerifyOut:
    """Re-hash stored blobs; name damaged or missing ones and the releases using them."""
    report = reg.verify(ref)
    return VerifyOut.of(report)
