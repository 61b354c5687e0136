"""Release notes in Markdown: the human notes, what changed since the previous stable
release, evaluation results, approvals, signatures, risk classes and the policy check.

"Previous stable" is the release the policy's ``baseline`` alias points at, else the
``stable`` alias, else the release's lineage parent (``against`` overrides it).
"""

from __future__ import annotations

from airlock.catalog import governance as sql
from airlock.core.diff import diff_manifests, render_markdown
from airlock.core.digest import short
from airlock.core.policy import PolicyVerdict
from airlock.core.records import Approval, EvalRunSummary, Release
from airlock.services.promotion import baseline_for, decide, stored_policy
from airlock.services.registry import Registry
from airlock.services.signatures import SignatureCheck, release_signature_checks
from airlock.services.workspace import Workspace

_CHANGED = "## What changed since "


class ReleaseNotes:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.registry = Registry(workspace)

    def render(self, ref: str, *, stage: str = "production", against: str | None = None) -> str:
        with self.ws.db.read() as conn:
            release = self.registry.resolve_in(conn, ref)
            found = stored_policy(conn, release.model)
            base: Release | None
            if against is not None:
                base = self.registry.resolve_in(conn, against)
            else:
                base, _ = baseline_for(conn, release, "stable", found[0] if found else None)
            runs = sql.eval_runs_of(conn, release.id)
            approvals = sql.approvals_of(conn, release.id)
            signatures = release_signature_checks(conn, release)
            verdict = decide(conn, release, stage)
        manifest = release.manifest()
        if base is not None:
            text = render_markdown(diff_manifests(base.manifest(), manifest), manifest)
        else:
            head = render_markdown(diff_manifests(manifest, manifest), manifest)
            text = (
                head.split(_CHANGED, 1)[0]
                + "## First release\n\nNo earlier release to compare with.\n"
            )
        lines = [text.rstrip(), ""]
        lines += [f"Release digest: `{release.digest}`, author: {manifest.author}", ""]
        lines += _evals(runs)
        lines += _approvals(approvals)
        lines += _signatures(signatures)
        lines += _verdict(verdict)
        return "\n".join(lines).rstrip() + "\n"


def _evals(runs: list[EvalRunSummary]) -> list[str]:
    out = ["## Evaluations", ""]
    if not runs:
        return [*out, "No evaluation runs yet.", ""]
    out += [
        "| suite | cases | pass rate | baseline | Δ pass rate (CI) | p | run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        record = run.document()
        cmp = (record.get("comparison") or {}).get("pass_rate")
        if cmp:
            delta = (
                f"{cmp['delta']:+.3f} ({cmp['ci_low']:+.3f} … {cmp['ci_high']:+.3f}, "
                f"{cmp['confidence']:.0%})"
            )
            p = f"{cmp['p_value']:.3g}" + (" *" if cmp["p_value"] < 0.05 else "")
            base = f"{record.get('baseline')} ({cmp['baseline']:.3f})"
        else:
            delta, p, base = "—", "—", "—"
        out.append(
            f"| {run.suite} | {run.cases} | {run.pass_rate:.3f} | {base} | {delta} | {p} | "
            f"#{run.id} {run.finished_at:%Y-%m-%d} |"
        )
    return [*out, "", "`*`: significant at 5 % (McNemar exact test on paired cases).", ""]


def _approvals(rows: list[Approval]) -> list[str]:
    out = ["## Approvals", ""]
    if not rows:
        return [*out, "None yet.", ""]
    out += [
        "| stage | decision | by | role | when | comment |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    out += [
        f"| {a.stage} | {a.decision} | {a.actor} | {a.role} | {a.at:%Y-%m-%d %H:%M} | "
        f"{a.comment.replace('|', '/') or '—'} |"
        for a in rows
    ]
    return [*out, ""]


def _signatures(checks: list[SignatureCheck]) -> list[str]:
    out = ["## Signatures", ""]
    if not checks:
        return [*out, "Unsigned.", ""]
    out += [
        f"- {'valid' if c.valid else 'INVALID'}: {c.key_name or short(c.key_id)} "
        f"(signed by {c.signed_by or '?'}): {c.why}"
        for c in checks
    ]
    return [*out, ""]


def _verdict(v: PolicyVerdict) -> list[str]:
    out = [f"## Policy check for {v.stage}", ""]
    if v.policy_version is None:
        return [*out, "No policy is set for this model.", ""]
    if v.risk:
        out += ["Risk classes:", ""]
        out += [f"- **{m.name}**: {'; '.join(m.reasons)}" for m in v.risk]
        out.append("")
    else:
        out += ["Risk classes: none.", ""]
    if v.rollout.reasons:
        out += ["Rollout requirements: " + "; ".join(v.rollout.reasons), ""]
    if not v.results:
        return [*out, f"Policy v{v.policy_version} has no rules for {v.stage}.", ""]
    out += [f"Policy v{v.policy_version}: {'passes' if v.ok else 'BLOCKED'}", ""]
    out += [f"- {'pass' if r.passed else '**FAIL**'} `{r.rule}`: {r.why}" for r in v.results]
    return [*out, ""]
