"""What changed between two manifests: a pure function of two values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airlock.core.digest import short
from airlock.core.manifest import Component, Manifest


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class MetricDelta:
    name: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    old: str
    new: str
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    files_changed: tuple[Change, ...] = ()  # old/new are (digest, size)
    components: tuple[Change, ...] = ()  # old/new are a description or None
    lineage: tuple[Change, ...] = ()
    metrics: tuple[MetricDelta, ...] = ()
    notes: tuple[Change, ...] = ()
    bytes_added: int = 0
    parameters: Change | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def changed_roles(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.components)

    @property
    def is_empty(self) -> bool:
        return not (
            self.files_added
            or self.files_removed
            or self.files_changed
            or self.components
            or self.lineage
            or self.metrics
            or self.notes
        )


def describe_component(comp: Component | None) -> str | None:
    if comp is None:
        return None
    if comp.ref is not None:
        return comp.ref
    if comp.digest is not None:
        return short(comp.digest)
    return f"file {comp.path}"


def _component_identity(comp: Component, manifest: Manifest) -> str:
    # A component stored as a file of the release is identified by that file's digest.
    if comp.path is not None:
        entry = manifest.file(comp.path)
        return entry.digest if entry else comp.path
    return comp.ref or str(comp.digest)


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    old_files = {f.path: f for f in old.files}
    new_files = {f.path: f for f in new.files}
    added = tuple(sorted(set(new_files) - set(old_files)))
    removed = tuple(sorted(set(old_files) - set(new_files)))
    changed = tuple(
        Change(
            p, (old_files[p].digest, old_files[p].size), (new_files[p].digest, new_files[p].size)
        )
        for p in sorted(set(old_files) & set(new_files))
        if old_files[p].digest != new_files[p].digest
    )
    old_digests = {f.digest for f in old.files}
    bytes_added = sum(f.size for f in new.files if f.digest not in old_digests)

    components = []
    for role in sorted(set(old.components) | set(new.components)):
        a, b = old.components.get(role), new.components.get(role)
        ida = _component_identity(a, old) if a else None
        idb = _component_identity(b, new) if b else None
        if ida != idb:
            components.append(Change(role, describe_component(a), describe_component(b)))

    lineage: list[Change] = []
    old_ds = {d.name: d for d in old.lineage.datasets}
    new_ds = {d.name: d for d in new.lineage.datasets}
    for name in sorted(set(old_ds) | set(new_ds)):
        a_ds, b_ds = old_ds.get(name), new_ds.get(name)
        if a_ds != b_ds:
            lineage.append(
                Change(
                    f"dataset {name}",
                    (a_ds.digest or a_ds.uri) if a_ds else None,
                    (b_ds.digest or b_ds.uri) if b_ds else None,
                )
            )
    oc, nc = old.lineage.code, new.lineage.code
    if (oc.commit if oc else None) != (nc.commit if nc else None):
        lineage.append(Change("code commit", oc.commit if oc else None, nc.commit if nc else None))
    if old.lineage.parent != new.lineage.parent:
        lineage.append(Change("parent", old.lineage.parent, new.lineage.parent))
    otc, ntc = old.lineage.training_config, new.lineage.training_config
    for key in sorted(set(otc) | set(ntc)):
        if otc.get(key) != ntc.get(key):
            lineage.append(Change(f"training_config.{key}", otc.get(key), ntc.get(key)))

    metrics = tuple(
        MetricDelta(m, old.metrics.get(m), new.metrics.get(m))
        for m in sorted(set(old.metrics) | set(new.metrics))
        if old.metrics.get(m) != new.metrics.get(m)
    )
    notes = tuple(
        Change(k, getattr(old.notes, k), getattr(new.notes, k))
        for k in ("summary", "changes", "caveats", "known_failure_modes", "risk_assessment")
        if getattr(old.notes, k) != getattr(new.notes, k)
    )
    params = None
    if old.parameters != new.parameters:
        params = Change("parameters", old.parameters, new.parameters)
    return ManifestDiff(
        old=old.ref,
        new=new.ref,
        files_added=added,
        files_removed=removed,
        files_changed=changed,
        components=tuple(components),
        lineage=tuple(lineage),
        metrics=metrics,
        notes=notes,
        bytes_added=bytes_added,
        parameters=params,
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple | list):
        return "; ".join(str(v) for v in value) or "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return short(text) if text.startswith("sha256:") else text


def render_markdown(diff: ManifestDiff, new: Manifest) -> str:
    """Release notes in Markdown: the human notes, then what changed."""
    lines = [f"# {new.ref}", ""]
    if new.notes.summary:
        lines += [new.notes.summary, ""]
    for title, items in (
        ("Changes", new.notes.changes),
        ("Caveats", new.notes.caveats),
        ("Known failure modes", new.notes.known_failure_modes),
    ):
        if items:
            lines += [f"## {title}", "", *[f"- {i}" for i in items], ""]
    if new.notes.risk_assessment:
        lines += ["## Risk assessment", "", new.notes.risk_assessment, ""]
    lines += [f"## What changed since {diff.old}", ""]
    if diff.is_empty:
        lines += ["Nothing: the two releases have the same content.", ""]
        return "\n".join(lines)
    if diff.files_added or diff.files_removed or diff.files_changed:
        lines += ["### Files", ""]
        lines += [f"- added `{p}`" for p in diff.files_added]
        lines += [f"- removed `{p}`" for p in diff.files_removed]
        lines += [
            f"- changed `{c.key}` ({_fmt(c.old[0])} → {_fmt(c.new[0])})" for c in diff.files_changed
        ]
        lines += ["", f"New bytes: {diff.bytes_added:,}", ""]
    if diff.components:
        lines += ["### Components", "", "| role | before | after |", "| --- | --- | --- |"]
        lines += [f"| {c.key} | {_fmt(c.old)} | {_fmt(c.new)} |" for c in diff.components]
        lines.append("")
    if diff.lineage:
        lines += ["### Lineage", "", "| what | before | after |", "| --- | --- | --- |"]
        lines += [f"| {c.key} | {_fmt(c.old)} | {_fmt(c.new)} |" for c in diff.lineage]
        lines.append("")
    if diff.metrics:
        lines += [
            "### Metrics",
            "",
            "| metric | before | after | delta |",
            "| --- | --- | --- | --- |",
        ]
        for m in diff.metrics:
            delta = "—" if m.delta is None else f"{m.delta:+.4g}"
            lines.append(f"| {m.name} | {_fmt(m.old)} | {_fmt(m.new)} | {delta} |")
        lines.append("")
    if diff.parameters:
        lines += [
            f"Parameters: {_fmt(diff.parameters.old)} → {_fmt(diff.parameters.new)}",
            "",
        ]
    return "\n".join(lines)
