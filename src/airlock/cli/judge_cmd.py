"""``airlock judge``: people's labels on judged answers, and how far the judge agrees."""

from __future__ import annotations

from typing import Annotated

import typer

from airlock.cli.common import AsJson, console, handle_errors, print_json

judge_app = typer.Typer(
    help="Calibrate an LLM judge: label answers it scored, see its agreement with people "
    "(a judge below the rollout's min_agreement cannot gate).",
    no_args_is_help=True,
)


@judge_app.command("label")
@handle_errors
def label(
    response_id: Annotated[str, typer.Argument(help="The answer's response id (chatcmpl-...).")],
    good: Annotated[
        bool, typer.Option("--good/--bad", help="Whether the answer was good, as a person sees it.")
    ],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Record a person's verdict on a kept answer; it counts as that answer's feedback."""
    from airlock.cli.feedback_backend import open_feedback

    with open_feedback() as side:
        service = side.label(response_id, good, reason=reason)
    console.print(f"labelled {response_id} of {service} as {'good' if good else 'bad'}")


@judge_app.command("agreement")
@handle_errors
def agreement(
    service: Annotated[str, typer.Argument(help="Service name.")],
    judge: Annotated[str, typer.Option("--judge", help="The judge release (name@version).")],
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="A judged score at or above this passes.")
    ] = 0.5,
    as_json: AsJson = False,
) -> None:
    """How often the judge's pass/fail matched people's (feedback and labels)."""
    from airlock.cli.feedback_backend import open_feedback

    with open_feedback() as side:
        found = side.judge_agreement(service, judge, threshold=threshold)
    if as_json:
        print_json(
            {
                "service": service,
                "judge": judge,
                "labels": found.labels,
                "agree": found.agree,
                "share": found.share,
                "low": found.low,
                "high": found.high,
                "kappa": found.kappa,
            }
        )
        return
    console.print(f"{judge} on {service}: {found.describe()}")
