"""A release's lineage: what it was made from, what it is built of, and its parent chain.

:func:`lineage` walks from a release back through its parents (at most
:data:`MAX_ANCESTORS` of them, stopping at a cycle or at a parent this catalog
does not hold) and returns one frozen :class:`Lineage`. The REST API draws it as
a graph (:meth:`Lineage.graph`), the dashboard as columns and a parent chain:
both from the same walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airlock.core.diff import describe_component
from airlock.core.digest import short
from airlock.errors import AirlockError
from airlock.services.registry import Registry

MAX_ANCESTORS = 50
"""Parents followed back from a release at most (a longer chain is cut: ``truncated``)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    digest: str | None
    uri: str | None

    @property
    def detail(self) -> str:
        return short(self.digest) if self.digest else (self.uri or "")


@dataclass(frozen=True, slots=True)
class Part:
    """One component of a release: another release (``ref``) or bytes described by ``detail``."""

    role: str
    ref: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Ancestor:
    """A release of the chain; ``found`` is False for a parent this catalog does not hold
    (then only ``ref`` is known)."""

    ref: str
    digest: str = ""
    found: bool = True
    datasets: tuple[Dataset, ...] = ()
    code_commit: str | None = None
    parts: tuple[Part, ...] = ()
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: Literal["release", "dataset", "code", "component"]
    label: str


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str


@dataclass(frozen=True, slots=True)
class Lineage:
    """``chain[0]`` is the release asked for, then its parent, its parent's parent, ..."""

    chain: tuple[Ancestor, ...]
    truncated: bool = False

    @property
    def release(self) -> Ancestor:
        return self.chain[0]

    @property
    def parents(self) -> tuple[Ancestor, ...]:
        return self.chain[1:]

    def graph(self) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
        """Datasets and code → release → components; release → parent, for every release."""
        nodes: dict[str, Node] = {}
        edges: list[Edge] = []
        for a in self.chain:
            rid = f"release:{a.ref}"
            if not a.found:
                nodes.setdefault(rid, Node(rid, "release", a.ref))
                continue
            nodes[rid] = Node(rid, "release", f"{a.ref} {short(a.digest)}")
            for d in a.datasets:
                did = f"dataset:{d.name}:{d.digest or d.uri}"
                nodes[did] = Node(did, "dataset", d.name)
                edges.append(Edge(did, rid, "trained on"))
            if a.code_commit:
                cid = f"code:{a.code_commit}"
                nodes[cid] = Node(cid, "code", a.code_commit[:12])
                edges.append(Edge(cid, rid, "code"))
            for p in a.parts:
                if p.ref:
                    target = f"release:{p.ref}"
                    nodes.setdefault(target, Node(target, "release", p.ref))
                else:
                    target = f"component:{a.ref}:{p.role}"
                    nodes[target] = Node(target, "component", f"{p.role}: {p.detail}")
                edges.append(Edge(rid, target, p.role))
            if a.parent:
                pid = f"release:{a.parent}"
                nodes.setdefault(pid, Node(pid, "release", a.parent))
                edges.append(Edge(rid, pid, "parent"))
        return tuple(nodes.values()), tuple(edges)


def lineage(registry: Registry, ref: str, *, limit: int = MAX_ANCESTORS) -> Lineage:
    """Walk from ``ref`` back through its parents (NotFound for an unknown ``ref``)."""
    chain = [_ancestor(registry, ref)]
    seen = {chain[0].ref}
    parent = chain[0].parent
    while parent and parent not in seen:
        if len(chain) > limit:
            return Lineage(tuple(chain), truncated=True)
        seen.add(parent)
        try:
            chain.append(_ancestor(registry, parent))
        except AirlockError:  # not in this catalog (or not a valid reference)
            chain.append(Ancestor(parent, found=False))
            break
        parent = chain[-1].parent
    return Lineage(tuple(chain))


def _ancestor(registry: Registry, ref: str) -> Ancestor:
    row = registry.resolve(ref)
    m = row.manifest()
    code = m.lineage.code
    return Ancestor(
        ref=row.ref,
        digest=row.digest,
        datasets=tuple(Dataset(d.name, d.digest, d.uri) for d in m.lineage.datasets),
        code_commit=code.commit if code and code.commit else None,
        parts=tuple(
            Part(role, comp.ref, describe_component(comp) or "")
            for role, comp in sorted(m.components.items())
        ),
        parent=m.lineage.parent,
    )


__all__ = ["MAX_ANCESTORS", "Ancestor", "Dataset", "Edge", "Lineage", "Node", "Part", "lineage"]
