"""Rich renderings of registry values (no rules here, only presentation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from airlock.cli.backend import ReleaseListing
from airlock.cli.common import human_bytes, human_count
from airlock.core.digest import short

if TYPE_CHECKING:
    from airlock.core.diff import ManifestDiff
    from airlock.core.verdict import VerdictReport
    from airlock.services.registry import ReleaseView


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple | list):
        return "; ".join(str(v) for v in value) or "—"
    text = str(value)
    return short(text) if text.startswith("sha256:") else text


def release_view(view: ReleaseView) -> RenderableType:
    m = view.manifest
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("release", m.ref)
    head.add_row("digest", view.row.digest)
    head.add_row("aliases", ", ".join(view.aliases) or "—")
    head.add_row("author", m.author)
    head.add_row("created", m.created_at.isoformat(timespec="seconds"))
    head.add_row("size", f"{human_bytes(m.total_size)} in {len(m.files)} file(s)")
    head.add_row("parameters", human_count(m.parameters))
    if m.has_pickle:
        head.add_row(
            "safety", Text("contains pickle-based files (pushed with --allow-pickle)", "bold red")
        )
    parts: list[RenderableType] = [head]
    if m.notes.summary:
        parts.append(Panel(m.notes.summary, title="summary", title_align="left", expand=False))
    for title, items in (
        ("changes", m.notes.changes),
        ("caveats", m.notes.caveats),
        ("known failure modes", m.notes.known_failure_modes),
    ):
        if items:
            parts.append(Text(f"{title}:", style="bold"))
            parts.extend(Text(f"  • {i}") for i in items)
    if m.notes.risk_assessment:
        parts.append(
            Panel(
                m.notes.risk_assessment, title="risk assessment", title_align="left", expand=False
            )
        )
    if m.components:
        from airlock.core.diff import describe_component

        comp = Table("role", "component", title="components", title_justify="left")
        for role, c in sorted(m.components.items()):
            comp.add_row(role, describe_component(c) or "—")
        parts.append(comp)
    lin = m.lineage
    if lin.datasets or lin.code or lin.parent or lin.training_config:
        t = Table("lineage", "value", title="lineage", title_justify="left")
        if lin.parent:
            t.add_row("parent", lin.parent)
        for d in lin.datasets:
            t.add_row(
                f"dataset {d.name}", " ".join(x for x in (d.uri, _fmt(d.digest)) if x and x != "—")
            )
        if lin.code:
            t.add_row("code", f"{lin.code.repo or ''} {lin.code.commit or ''}".strip())
        for k, v in sorted(lin.training_config.items()):
            t.add_row(f"training_config.{k}", str(v))
        parts.append(t)
    if m.metrics:
        t = Table("metric", "value", title="metrics", title_justify="left")
        for k, v in sorted(m.metrics.items()):
            t.add_row(k, f"{v:.6g}")
        parts.append(t)
    files = Table("path", "size", "digest", "format", title="files", title_justify="left")
    for f in m.files:
        fmt = ""
        if f.format is not None:
            bits: list[str] = [f.format.kind]
            if f.format.tensor_count is not None:
                bits.append(f"{f.format.tensor_count} tensors")
            if f.format.parameters:
                bits.append(f"{human_count(f.format.parameters)} params")
            if f.format.dtypes:
                bits.append("/".join(f.format.dtypes))
            if f.format.architecture:
                bits.append(f.format.architecture)
            if f.format.unsafe:
                bits.append("[bold red]UNSAFE pickle[/]")
            fmt = ", ".join(bits)
        files.add_row(f.path, human_bytes(f.size), short(f.digest), fmt)
    parts.append(files)
    return Group(*parts)


def release_listing_table(model: str, rows: Sequence[ReleaseListing]) -> Table:
    """``releases_table`` for listings (what ``airlock ls MODEL`` shows, local or remote)."""
    t = Table("version", "digest", "created", "author", "size", "params", "aliases", title=model)
    for r in rows:
        t.add_row(
            r.version + (" [red](pickle)[/]" if r.has_pickle else ""),
            short(r.digest),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.author,
            human_bytes(r.total_size),
            human_count(r.parameters),
            ", ".join(r.aliases),
        )
    return t


def diff_view(diff: ManifestDiff) -> RenderableType:
    if diff.is_empty:
        return Text(f"{diff.old} and {diff.new} have the same content")
    parts: list[RenderableType] = [Text(f"{diff.old} → {diff.new}", style="bold")]
    if diff.files_added or diff.files_removed or diff.files_changed:
        t = Table("", "file", "before", "after", title="files", title_justify="left")
        for p in diff.files_added:
            t.add_row("[green]+[/]", p, "—", "added")
        for p in diff.files_removed:
            t.add_row("[red]-[/]", p, "removed", "—")
        for c in diff.files_changed:
            t.add_row(
                "[yellow]~[/]",
                c.key,
                f"{short(c.old[0])} {human_bytes(c.old[1])}",
                f"{short(c.new[0])} {human_bytes(c.new[1])}",
            )
        parts.append(t)
        parts.append(Text(f"new bytes: {human_bytes(diff.bytes_added)}"))
    for title, changes in (
        ("components", diff.components),
        ("lineage", diff.lineage),
        ("notes", diff.notes),
    ):
        if changes:
            t = Table("what", "before", "after", title=title, title_justify="left")
            for c in changes:
                t.add_row(c.key, _fmt(c.old), _fmt(c.new))
            parts.append(t)
    if diff.metrics:
        t = Table("metric", "before", "after", "delta", title="metrics", title_justify="left")
        for m in diff.metrics:
            delta = "—" if m.delta is None else f"{m.delta:+.4g}"
            t.add_row(m.name, _fmt(m.old), _fmt(m.new), delta)
        parts.append(t)
    if diff.parameters is not None:
        parts.append(
            Text(
                f"parameters: {human_count(diff.parameters.old)} → {human_count(diff.parameters.new)}"
            )
        )
    return Group(*parts)


_VERDICT_HEADERS = {
    "metric": "metric",
    "outcome": "outcome",
    "candidate": "candidate",
    "stable": "stable",
    "effect": "effect",
    "interval": "anytime-valid interval",
    "threshold": "harm above",
    "mde": "detectable",
    "evidence": "evidence",
}
_BRIEF = ("metric", "outcome", "stable", "candidate", "effect", "interval", "mde")
_OUTCOME_STYLE = {"fail": "red", "pass": "green"}


def verdict_table(verdict: VerdictReport, *, brief: bool = False) -> RenderableType:
    """An analysis verdict, one metric a row (the CLI's ``rollout status`` and the demo).

    ``brief`` keeps the columns a narrated run needs and leaves out the borders and the
    sample-ratio line.
    """
    from airlock.core.verdict_text import METRIC_COLUMNS, in_words, metric_row, sample_ratio

    columns = _BRIEF if brief else METRIC_COLUMNS
    table = Table(*(_VERDICT_HEADERS[c] for c in columns), box=None if brief else Table().box)
    for m in verdict.per_metric:
        row = metric_row(m)
        style = _OUTCOME_STYLE.get(row["outcome"], "yellow")
        row["outcome"] = f"[{style}]{row['outcome']}[/]"
        if brief:
            row["metric"] = f"    {row['metric']}"
        table.add_row(*(row[c] for c in columns))
    if brief:
        return table
    parts: list[RenderableType] = [table]
    share = sample_ratio(verdict)
    if share is not None:
        parts.append(share)
    # θ is not self-explanatory: say what the latency numbers mean in words.
    parts.extend(Text(words) for m in verdict.per_metric if (words := in_words(m)) is not None)
    return table if len(parts) == 1 else Group(*parts)
