"""Governance commands: policy, check, approve, reject, key, sign, signatures, notes.

Each works on the local workspace or, with ``AIRLOCK_URL``, on a server
(:mod:`airlock.cli.governance_backend`); only ``key generate`` is always local.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table

from airlock.cli.common import (
    AsJson,
    Limit,
    console,
    err_console,
    handle_errors,
    limited,
    print_json,
)
from airlock.cli.governance_backend import open_governance
from airlock.core.digest import short
from airlock.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from airlock.core.manifest import Manifest
    from airlock.core.policy import PolicyVerdict
    from airlock.services.governance import GovernanceSummary, SuiteComparison

# Services are imported inside each command: `airlock --help` stays fast.

policy_app = typer.Typer(
    help="Promotion policies: rules a release must satisfy to take an alias or be rolled out.",
    no_args_is_help=True,
)
key_app = typer.Typer(
    help="Signing keys: generate ed25519 key pairs; trust public keys (ed25519, EC) and CA "
    "certificates.",
    no_args_is_help=True,
)

_REF = "chat@1.2.0, chat@production, chat, or a digest prefix."


# -- policies ---------------------------------------------------------------------------


@policy_app.command("set")
@handle_errors
def policy_set(
    name: Annotated[str, typer.Argument(help="The model (or service) the policy governs.")],
    file: Annotated[Path, typer.Argument(help="Policy YAML (stages, risk_classes, baseline).")],
    reason: Annotated[str, typer.Option(help="Why the rules change (kept in the audit log).")] = "",
) -> None:
    """Store a new version of NAME's policy (admin). Each change is versioned and audited.

    \b
    stages:
      production:
        approvals: {required: 1, roles: [approver, admin]}
        evals: [{suite: quality, min_pass_rate: 0.5, max_regression: 0.05, confidence: 0.95}]
        max_changed_components: 2
        allow_pickle: false
        require_signature: true
        required_notes: [summary]
    risk_classes:
      - name: safety-change
        when: {components_changed: [safety_policy]}
        require: {approvals: 2, risk_assessment: true, min_canary_minutes: 60, shadow_first: true}
    """
    try:
        document = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no policy file at {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}") from exc
    with open_governance() as side:
        change = side.set_policy(name, document, reason=reason)
    if not change.created:
        console.print(f"policy of {name} is already this (v{change.row.version}): nothing to do")
        return
    before = f"v{change.previous} → " if change.previous else ""
    stages = ", ".join(change.policy.stages) or "none"
    console.print(
        f"policy of [bold]{name}[/]: {before}[bold]v{change.row.version}[/] "
        f"({short(change.row.digest)}); stages: {stages}; "
        f"risk classes: {len(change.policy.risk_classes)}"
    )


@policy_app.command("show")
@handle_errors
def policy_show(
    name: Annotated[str, typer.Argument(help="Model or service name.")],
    version: Annotated[int | None, typer.Option(help="An earlier version.")] = None,
) -> None:
    """Print the policy document of NAME as it was set (comments kept)."""
    with open_governance() as side:
        row = side.policy(name, version)
    err_console.print(
        f"[dim]policy of {name} v{row.version}, set by {row.created_by} on "
        f"{row.created_at:%Y-%m-%d %H:%M}{': ' + row.reason if row.reason else ''}[/]"
    )
    typer.echo(row.document.rstrip("\n"))


@policy_app.command("history")
@handle_errors
def policy_history(
    name: Annotated[str | None, typer.Argument(help="Only this model or service.")] = None,
    limit: Limit = 0,
    as_json: AsJson = False,
) -> None:
    """Every version of every policy: who set it, when and why."""
    with open_governance() as side:
        rows = side.policy_history(name)
    rows = sorted(
        limited(sorted(rows, key=lambda r: r.created_at, reverse=True), limit), key=rows.index
    )
    if as_json:  # the catalog's row id is left out, as the API leaves it out
        print_json([{k: v for k, v in asdict(r).items() if k != "id"} for r in rows])
        return
    if not rows:
        console.print("no policies yet: [bold]airlock policy set NAME FILE[/]")
        return
    t = Table("policy", "version", "digest", "set by", "when", "reason", "event")
    for r in rows:
        t.add_row(
            r.name,
            f"v{r.version}",
            short(r.digest),
            r.created_by,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.reason or "—",
            str(r.event_seq or ""),
        )
    console.print(t)


# -- checks and approvals -------------------------------------------------------------


def verdict_view(v: PolicyVerdict) -> RenderableType:
    parts: list[RenderableType] = []
    head = f"[bold]{v.ref}[/] for [bold]{v.stage}[/]"
    if v.policy_version is None:
        return f"{head}: no policy is set for this model, nothing to satisfy"
    base = f" (baseline {v.baseline_ref})" if v.baseline_ref else " (no baseline: first release)"
    parts.append(f"{head} under policy v{v.policy_version}{base}")
    if v.risk:
        for m in v.risk:
            parts.append(f"risk class [bold yellow]{m.name}[/]: {'; '.join(m.reasons)}")
    if not v.results:
        parts.append(f"no rules for {v.stage}")
        return Group(*parts)
    t = Table("", "rule", "why", "from", box=None, pad_edge=False)
    for r in v.results:
        t.add_row("[green]pass[/]" if r.passed else "[bold red]FAIL[/]", r.rule, r.why, r.source)
    parts.append(t)
    if v.rollout.reasons:
        parts.append("rollout must: " + "; ".join(v.rollout.reasons))
    failed = len(v.failures)
    parts.append(
        "[green]may proceed[/]"
        if v.ok
        else f"[bold red]blocked[/] by {failed} rule(s): {', '.join(r.rule for r in v.failures)}"
    )
    return Group(*parts)


@handle_errors
def check(
    ref: Annotated[str, typer.Argument(help=_REF)],
    stage: Annotated[str, typer.Option("--for", help="The alias (stage), e.g. production.")],
    policy: Annotated[
        str | None, typer.Option(help="Check a service's policy instead of the model's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print every policy rule for REF taking STAGE: pass or fail, and why. Exit 1 if blocked."""
    with open_governance() as side:
        verdict = side.check(ref, stage, policy_name=policy)
    if as_json:
        typer.echo(json.dumps(verdict.to_dict(), indent=2))
    else:
        console.print(verdict_view(verdict))
    if not verdict.ok:
        raise typer.Exit(code=1)


@handle_errors
def approve(
    ref: Annotated[str, typer.Argument(help=_REF)],
    stage: Annotated[
        str, typer.Option("--for", help="The alias (stage) approved, e.g. production.")
    ],
    comment: Annotated[str, typer.Option(help="What you checked.")] = "",
) -> None:
    """Approve REF for STAGE (approver or admin; never the release's author)."""
    with open_governance() as side:
        result = side.approve(ref, stage=stage, comment=comment)
    console.print(f"approved [bold]{result.ref}[/] for {result.stage}")


@handle_errors
def reject(
    ref: Annotated[str, typer.Argument(help=_REF)],
    stage: Annotated[str, typer.Option("--for", help="The alias (stage), e.g. production.")],
    comment: Annotated[str, typer.Option(help="What is wrong (required).")],
) -> None:
    """Reject REF for STAGE: it is blocked until you approve it again."""
    with open_governance() as side:
        result = side.reject(ref, stage=stage, comment=comment)
    console.print(f"rejected [bold]{result.ref}[/] for {result.stage}")


# -- keys and signatures -------------------------------------------------------------------


@key_app.command("generate")
@handle_errors
def key_generate(
    path: Annotated[Path, typer.Argument(help="Private key file to write (PATH.pub: public key).")],
) -> None:
    """Write a new ed25519 key pair: PATH (private, mode 0600) and PATH.pub."""
    from airlock.services.signatures import generate_key

    private, public, kid = generate_key(path)
    console.print(f"wrote {private} (keep it secret) and {public}")
    console.print(f"key id {kid}")
    console.print(f"next: [bold]airlock key trust {public} --name NAME[/] (admin)")


@key_app.command("trust")
@handle_errors
def key_trust(
    public_key: Annotated[
        Path,
        typer.Argument(
            help="PEM file: an ed25519 or EC public key (KEY.pub), or a CA certificate."
        ),
    ],
    name: Annotated[str, typer.Option(help="A name for the key, e.g. release-bot.")],
) -> None:
    """Trust a public key or CA: signatures made with it count for policies (admin).

    EC keys and CA certificates verify OpenSSF model-signing signatures (model.sig).
    """
    try:
        pem = public_key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {public_key}: {exc}") from exc
    with open_governance() as side:
        row = side.trust_key(pem, name=name)
    console.print(f"trusted key [bold]{row.name}[/] ({row.key_id})")


@key_app.command("ls")
@handle_errors
def key_ls(as_json: AsJson = False) -> None:
    """List trusted (and revoked) public keys."""
    with open_governance() as side:
        rows = side.keys()
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no trusted keys: [bold]airlock key trust KEY.pub --name NAME[/]")
        return
    from airlock.services.openssf_signatures import kind_of

    t = Table("name", "kind", "key id", "added", "by", "state")
    for k in rows:
        state = f"[red]revoked {k.revoked_at:%Y-%m-%d}[/]" if k.revoked_at else "[green]trusted[/]"
        t.add_row(k.name, kind_of(k), k.key_id, k.added_at.strftime("%Y-%m-%d"), k.added_by, state)
    console.print(t)


@key_app.command("revoke")
@handle_errors
def key_revoke(
    name: Annotated[str, typer.Argument(help="Key name or id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
) -> None:
    """Stop trusting a key: its signatures no longer count (admin)."""
    with open_governance() as side:
        row = side.revoke_key(name, reason=reason)
    console.print(f"revoked key {row.name}")


@handle_errors
def sign(
    ref: Annotated[str, typer.Argument(help=_REF)],
    key: Annotated[
        Path,
        typer.Option(
            help="Private key (PEM): ed25519 (`airlock key generate`), or EC for --format openssf."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Also write the signature bundle (JSON) here, e.g. FOLDER/model.sig."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="airlock (ed25519, bound to the release digest) or openssf (the model.sig "
            "that OpenSSF model-signing verifies; EC key or --cert).",
        ),
    ] = "airlock",
    cert: Annotated[
        Path | None, typer.Option(help="openssf: the signing certificate (PEM) of --key.")
    ] = None,
    chain: Annotated[
        list[Path] | None,
        typer.Option(help="openssf: intermediate/CA certificates (PEM) of --cert; repeatable."),
    ] = None,
) -> None:
    """Sign REF: an in-toto statement of its files (airlock: ed25519; openssf: model-signing)."""
    if fmt not in ("airlock", "openssf"):
        raise InvalidInput(f"unknown signature format {fmt!r}", hint="use airlock or openssf")
    if fmt == "airlock" and (cert is not None or chain):
        raise InvalidInput("--cert and --chain go with --format openssf")
    if fmt == "openssf":
        from airlock.services.openssf_signatures import load_signer

        signer = load_signer(key, cert, chain or ())

        def make_bundle(manifest: Manifest, digest: str) -> str:
            return signer.sign_release(manifest)
    else:
        from airlock.services.signatures import airlock_bundle, load_private_key

        private = load_private_key(key)

        def make_bundle(manifest: Manifest, digest: str) -> str:
            return airlock_bundle(manifest, digest, private)[1]

    # Signed here, stored by the catalog (local or the server's): the key never travels.
    with open_governance() as side:
        added = side.add_signature(ref, make_bundle(*side.signing_subject(ref)))
    result, trusted = added.result, added.trusted
    who = result.key_name or f"untrusted key {short(result.key_id)}"
    if result.created:
        console.print(f"signed [bold]{result.ref}[/] with {who} ({fmt})")
    else:
        console.print(f"{result.ref} is already signed with {who}")
    if not trusted:
        err_console.print(
            "[yellow]warning:[/] this key is not trusted: the signature will not count until an "
            "admin runs `airlock key trust KEY.pub --name NAME` (or trusts the CA certificate)"
        )
    if out is not None:
        out.write_text(
            result.bundle + "\n" if fmt == "airlock" else result.bundle, encoding="utf-8"
        )
        console.print(f"wrote {out}")


@handle_errors
def signatures(
    ref: Annotated[str, typer.Argument(help=_REF)],
    bundle: Annotated[
        Path | None,
        typer.Option(help="Check this bundle against a folder (--path) instead of the catalog."),
    ] = None,
    path: Annotated[Path | None, typer.Option(help="Model folder to check with --bundle.")] = None,
    as_json: AsJson = False,
) -> None:
    """Verify REF's signatures against the trusted keys (exit 1 if none is valid)."""
    with open_governance() as side:
        if bundle is not None or path is not None:
            if bundle is None or path is None:
                raise InvalidInput("--bundle and --path go together")
            checks = [side.check_folder(bundle.read_text(encoding="utf-8"), path)]
        else:
            checks = side.signatures(ref)
    if as_json:
        print_json(checks)
        if not any(c.valid for c in checks):
            raise typer.Exit(code=1)
        return
    if not checks:
        console.print(f"{ref} is unsigned")
        raise typer.Exit(code=1)
    t = Table("", "key", "signed by", "when", "why")
    for c in checks:
        t.add_row(
            "[green]valid[/]" if c.valid else "[bold red]invalid[/]",
            c.key_name or short(c.key_id),
            c.signed_by or "—",
            c.at.strftime("%Y-%m-%d %H:%M") if c.at else "—",
            c.why,
        )
    console.print(t)
    if not any(c.valid for c in checks):
        raise typer.Exit(code=1)


# -- notes and the tables of show and diff ----------------------------------------------
# (`airlock eval` and `airlock evals` live in evals_cmd.py)


@handle_errors
def notes(
    ref: Annotated[str, typer.Argument(help=_REF)],
    stage: Annotated[
        str, typer.Option("--for", help="Stage whose policy check to include.")
    ] = "production",
    against: Annotated[
        str | None, typer.Option(help="Compare with this release instead of the previous stable.")
    ] = None,
) -> None:
    """Release notes in Markdown: notes, changes since the previous stable, evals, approvals."""
    with open_governance() as side:
        text = side.notes(ref, stage=stage, against=against)
    typer.echo(text, nl=False)


def governance_view(summary: GovernanceSummary) -> RenderableType | None:
    """Approvals, evaluation runs and signatures of a release (for ``airlock show``)."""
    parts: list[RenderableType] = []
    if summary.approvals:
        t = Table("stage", "decision", "by", "role", "when", "comment", title="approvals")
        for a in summary.approvals:
            t.add_row(
                a.stage,
                "[green]approve[/]" if a.decision == "approve" else "[red]reject[/]",
                a.actor,
                a.role,
                a.at.strftime("%Y-%m-%d %H:%M"),
                a.comment or "—",
            )
        parts.append(t)
    if summary.evals:
        from airlock.cli.evals_cmd import eval_runs_table

        parts.append(eval_runs_table(summary.evals))
    if summary.signatures:
        t = Table("signature", "key", "signed by", "why", title="signatures")
        for c in summary.signatures:
            t.add_row(
                "[green]valid[/]" if c.valid else "[red]invalid[/]",
                c.key_name or short(c.key_id),
                c.signed_by or "—",
                c.why,
            )
        parts.append(t)
    return Group(*parts) if parts else None


def eval_comparison_view(rows: list[SuiteComparison], old: str, new: str) -> RenderableType | None:
    """Evaluation results of two releases side by side (for ``airlock diff``)."""
    if not rows:
        return None
    t = Table("suite", old, new, "paired Δ pass rate (CI)", "p", title="evaluations")
    for r in rows:
        cmp = None
        if r.paired is not None:
            cmp = (json.loads(r.paired.result).get("comparison") or {}).get("pass_rate")
        t.add_row(
            r.suite,
            f"{r.old.pass_rate:.3f} (#{r.old.id})" if r.old else "—",
            f"{r.new.pass_rate:.3f} (#{r.new.id})" if r.new else "—",
            f"{cmp['delta']:+.3f} ({cmp['ci_low']:+.3f} … {cmp['ci_high']:+.3f})" if cmp else "—",
            f"{cmp['p_value']:.3g}" if cmp else "—",
        )
    return t
