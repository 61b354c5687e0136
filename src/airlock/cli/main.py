"""The ``airlock`` command line: thin commands over the services layer."""

from __future__ import annotations

import typer

from airlock import __version__
from airlock.cli import gateway_cmd, governance_cmd, registry_cmds, rollout_cmd, serve_cmd
from airlock.cli.alias_cmd import alias_app
from airlock.cli.audit_cmd import audit_app
from airlock.cli.db_cmd import db_app
from airlock.cli.demo_cmd import demo
from airlock.cli.drill_cmd import drill_app
from airlock.cli.export_cmd import export
from airlock.cli.feedback_cmd import feedback_app
from airlock.cli.gc_cmd import gc
from airlock.cli.import_cmd import import_app
from airlock.cli.judge_cmd import judge_app
from airlock.cli.key_cmd import gateway_key_app
from airlock.cli.login_cmd import login, logout
from airlock.cli.token_cmd import token_app
from airlock.cli.webhook_cmd import webhook_app

app = typer.Typer(
    name="airlock",
    help="Version, gate, roll out and roll back generative models safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airlock {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Airlock keeps its catalog and blobs in ./.airlock (see AIRLOCK_HOME, AIRLOCK_DATABASE_URL)."""


for fn in (
    registry_cmds.init,
    registry_cmds.push,
    registry_cmds.ls,
    registry_cmds.show,
    registry_cmds.diff,
    registry_cmds.pull,
    registry_cmds.verify,
):
    app.command()(fn)
app.add_typer(alias_app, name="alias")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.command()(gc)
app.command("gateway")(gateway_cmd.gateway)
app.command("serve")(serve_cmd.serve)
app.command("demo")(demo)
app.add_typer(gateway_cmd.service_app, name="service")
app.add_typer(token_app, name="token")
app.add_typer(governance_cmd.policy_app, name="policy")
app.add_typer(governance_cmd.key_app, name="key")
app.add_typer(rollout_cmd.rollout_app, name="rollout")
app.command("controller")(rollout_cmd.controller)
app.add_typer(drill_app, name="drill")
app.add_typer(feedback_app, name="feedback")
app.add_typer(judge_app, name="judge")
for command_name, command in (
    ("check", governance_cmd.check),
    ("approve", governance_cmd.approve),
    ("reject", governance_cmd.reject),
    ("sign", governance_cmd.sign),
    ("signatures", governance_cmd.signatures),
    ("eval", governance_cmd.eval_),
    ("notes", governance_cmd.notes),
):
    app.command(command_name)(command)


def _register_optional() -> None:
    # Sub-apps written alongside; registered here so the CLI stays one tree.
    try:
        from airlock.cli.model_cmd import model_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - present in every full checkout
        return
    app.add_typer(model_app, name="model")


_register_optional()
app.add_typer(gateway_key_app, name="gateway-key")  # gateway access (issue 10)
app.add_typer(webhook_app, name="webhook")  # events out (issue 14)
app.command("export")(export)  # OCI ModelPack (issue 14)
app.command("login")(login)  # remote workspace (issue 13)
app.command("logout")(logout)
app.add_typer(import_app, name="import")  # OCI layouts and MLflow (issue 14)


def run() -> None:
    app()
