"""``airlock eval`` runs a suite and records it; ``airlock evals`` lists and shows stored runs.

Local or remote alike (:mod:`airlock.cli.governance_backend`): remotely the suite file is
read here and the server runs it, and stored runs are read back from the server's record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from airlock.cli.common import AsJson, console, handle_errors, print_json
from airlock.cli.governance_backend import open_governance

if TYPE_CHECKING:
    from airlock.core.records import EvalRunSummary
    from airlock.services.evals import EvalRun

REF_HELP = "chat@1.2.0, chat@production, chat, or a digest prefix."

evals_app = typer.Typer(
    help="Stored evaluation runs: list a release's runs, show one as `airlock eval` printed it.",
    no_args_is_help=True,
)


@handle_errors
def eval_(
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    suite: Annotated[Path, typer.Option(help="Suite file: YAML, or JSONL with one case per line.")],
    baseline: Annotated[
        str | None, typer.Option(help="Compare with this release, case by case.")
    ] = None,
    confidence: Annotated[float, typer.Option(help="Confidence of the intervals.")] = 0.95,
    show_cases: Annotated[bool, typer.Option("--cases", help="List every case.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stored record as JSON.")
    ] = False,
) -> None:
    """Run an evaluation suite on REF (and --baseline), compare them pairwise, store the result."""
    from airlock.services.evals import load_suite  # loads the runtimes: only for this command

    parsed = load_suite(suite)  # read here, remotely too: the server runs what this file says
    with open_governance() as side:
        run = side.evaluate(ref, parsed, baseline=baseline, confidence=confidence)
        record = side.evaluation(run.id).document() if as_json else None
    if record is not None:
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    print_run(run, show_cases=show_cases)


@evals_app.command("ls")
@handle_errors
def evals_ls(
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    as_json: AsJson = False,
) -> None:
    """List REF's stored evaluation runs, oldest first: suite, pass rate, baseline, Δ, p."""
    with open_governance() as side:
        runs = side.evaluations(ref)
    if as_json:  # as the API lists them: no catalog row ids, no full record
        hidden = {"release_id", "baseline_release_id", "result"}
        print_json(
            [
                {
                    **{k: getattr(r, k) for k in r.__dataclass_fields__ if k not in hidden},
                    "baseline": r.baseline,
                }
                for r in runs
            ]
        )
        return
    if not runs:
        console.print(f"no evaluation runs of {ref}: [bold]airlock eval {ref} --suite FILE[/]")
        return
    console.print(eval_runs_table(runs))


@evals_app.command("show")
@handle_errors
def evals_show(
    run_id: Annotated[int, typer.Argument(help="The run number (`airlock evals ls REF`).")],
    show_cases: Annotated[bool, typer.Option("--cases", help="List every case.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stored record as JSON.")
    ] = False,
) -> None:
    """Show a stored run as `airlock eval` printed it (or its full record with --json)."""
    from airlock.services.evals import stored_run

    with open_governance() as side:
        summary = side.evaluation(run_id)
    if as_json:
        typer.echo(json.dumps(summary.document(), indent=2, ensure_ascii=False))
        return
    print_run(stored_run(summary), show_cases=show_cases)


def print_run(run: EvalRun, *, show_cases: bool) -> None:
    """What ``airlock eval`` prints: both releases' results, the paired comparisons, the cases."""
    t = Table("release", "passed", "pass rate", "mean score", "p50 ms", "p95 ms")
    t.add_row(
        run.ref,
        f"{run.passed}/{run.n}",
        f"{run.candidate_pass_rate:.3f}",
        f"{run.mean_score:.3f}",
        f"{run.latency_ms['p50']:.1f}",
        f"{run.latency_ms['p95']:.1f}",
    )
    if run.baseline_cases is not None and run.pass_rate is not None:
        base_passed = sum(c.passed for c in run.baseline_cases)
        t.add_row(
            run.baseline or "",
            f"{base_passed}/{run.n}",
            f"{run.pass_rate.baseline:.3f}",
            f"{run.score.baseline:.3f}" if run.score else "—",
            f"{run.latency_ms['baseline_p50']:.1f}",
            f"{run.latency_ms['baseline_p95']:.1f}",
        )
    console.print(f"suite [bold]{run.suite}[/] {run.suite_digest}, run #{run.id}")
    console.print(t)
    for label, cmp in (("pass rate", run.pass_rate), ("mean score", run.score)):
        if cmp is None:
            continue
        verdict = (
            "[bold green]significantly better[/]"
            if cmp.significant() and cmp.delta > 0
            else "[bold red]significantly worse[/]"
            if cmp.significant()
            else "no significant difference"
        )
        console.print(
            f"Δ {label} {cmp.delta:+.3f} ({cmp.ci.confidence:.0%} CI {cmp.ci.low:+.3f} … "
            f"{cmp.ci.high:+.3f}), p = {cmp.p_value:.3g} ({cmp.method}; {cmp.improved} improved, "
            f"{cmp.regressed} regressed): {verdict}"
        )
    if show_cases or run.baseline_cases is None:
        ct = Table(
            "case", run.ref, *([run.baseline or ""] if run.baseline_cases else []), "failed checks"
        )
        for i, c in enumerate(run.cases):
            row = ["[green]pass[/]" if c.passed else "[red]fail[/]"]
            if run.baseline_cases is not None:
                b = run.baseline_cases[i]
                row.append("[green]pass[/]" if b.passed else "[red]fail[/]")
            failed = "; ".join(f"{x.check}: {x.detail}" for x in c.checks if not x.passed)
            ct.add_row(c.id, *row, failed or "—")
        console.print(ct)


def eval_runs_table(runs: Sequence[EvalRunSummary]) -> Table:
    """Stored runs of a release, one line each (``airlock evals ls`` and ``airlock show``)."""
    t = Table(
        "run", "suite", "cases", "pass rate", "baseline", "Δ", "p", "when", title="evaluations"
    )
    for r in runs:
        record = json.loads(r.result)
        cmp = (record.get("comparison") or {}).get("pass_rate")
        t.add_row(
            f"#{r.id}",
            r.suite,
            str(r.cases),
            f"{r.pass_rate:.3f}",
            record.get("baseline") or "—",
            f"{cmp['delta']:+.3f}" if cmp else "—",
            f"{cmp['p_value']:.3g}" if cmp else "—",
            r.finished_at.strftime("%Y-%m-%d %H:%M"),
        )
    return t
