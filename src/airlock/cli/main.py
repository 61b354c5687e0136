"""The ``airlock`` command line: thin commands over the services layer.

The root group is lazy: it knows every command's name and one-line help from
:data:`COMMANDS` and imports a command's module only when that command runs (or
its own ``--help`` is asked for). ``airlock --help`` therefore imports no command
module at all, and ``airlock ls`` imports only ``registry_cmds`` and what ``ls``
needs. tests/cli/test_cli_startup.py checks the table against the real commands.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup, TyperOption


class LazyCommand(NamedTuple):
    """Where a command lives and what the root ``--help`` says about it."""

    module: str  # under airlock.cli
    attr: str  # a Typer app (a group) or a command function
    help: str  # the first paragraph of the command's own help, as the root lists it


def _cmd(module: str, attr: str, help: str) -> LazyCommand:
    return LazyCommand(f"airlock.cli.{module}", attr, help)


COMMANDS: dict[str, LazyCommand] = {
    # Commands first, then groups: the order Typer lists them in.
    "init": _cmd(
        "registry_cmds",
        "init",
        "Create an Airlock workspace (./.airlock: SQLite catalog + local blob store).",
    ),
    "push": _cmd(
        "registry_cmds",
        "push",
        "Push a folder as an immutable release NAME@VERSION (content-addressed, deduplicated).",
    ),
    "ls": _cmd(
        "registry_cmds", "ls", "List models, or the releases of one model (a page at a time)."
    ),
    "show": _cmd(
        "registry_cmds",
        "show",
        "Show a release: its bill of materials, lineage, notes and model-file summary.",
    ),
    "diff": _cmd(
        "registry_cmds",
        "diff",
        "What changed between two releases: files, components, lineage, metrics, notes.",
    ),
    "pull": _cmd(
        "registry_cmds",
        "pull",
        "Write a release's files to DEST, verifying every byte (all or nothing).",
    ),
    "verify": _cmd(
        "registry_cmds",
        "verify",
        "Re-hash stored blobs; name every damaged or missing blob and the releases using it.",
    ),
    "gc": _cmd(
        "gc_cmd",
        "gc",
        "Delete blobs no release uses and temporary files of killed pushes; one audit event.\n"
        "With --telemetry, roll up old telemetry instead.",
    ),
    "gateway": _cmd(
        "gateway_cmd",
        "gateway",
        "Serve every service over an OpenAI-compatible API (chat, completions, streaming).",
    ),
    "serve": _cmd(
        "serve_cmd",
        "serve",
        "Serve the REST API, the dashboard, the OpenAI-compatible gateway and the rollout\n"
        "controller on one port (creates ./.airlock on first use).",
    ),
    "demo": _cmd(
        "demo_cmd",
        "demo",
        "Train, gate, ship and roll back releases end to end, narrated (about a minute).",
    ),
    "controller": _cmd(
        "rollout_cmd",
        "controller",
        "Run the rollout controller alone: analyse every live rollout each tick and act on it.",
    ),
    "check": _cmd(
        "governance_cmd",
        "check",
        "Print every policy rule for REF taking STAGE: pass or fail, and why. Exit 1 if blocked.",
    ),
    "approve": _cmd(
        "governance_cmd",
        "approve",
        "Approve REF for STAGE (approver or admin; never the release's author).",
    ),
    "reject": _cmd(
        "governance_cmd",
        "reject",
        "Reject REF for STAGE: it is blocked until you approve it again.",
    ),
    "sign": _cmd(
        "governance_cmd",
        "sign",
        "Sign REF: an in-toto statement of its files (airlock: ed25519; openssf: model-signing).",
    ),
    "signatures": _cmd(
        "governance_cmd",
        "signatures",
        "Verify REF's signatures against the trusted keys (exit 1 if none is valid).",
    ),
    "eval": _cmd(
        "evals_cmd",
        "eval_",
        "Run an evaluation suite on REF (and --baseline), compare them pairwise, store the result.",
    ),
    "notes": _cmd(
        "governance_cmd",
        "notes",
        "Release notes in Markdown: notes, changes since the previous stable, evals, approvals.",
    ),
    "export": _cmd(  # OCI ModelPack (issue 14)
        "export_cmd",
        "export",
        "Export a release as a CNCF ModelPack OCI image layout (one raw layer per file).",
    ),
    "login": _cmd(  # remote workspace (issue 13)
        "login_cmd",
        "login",
        "Store a server and token (0600 file): later commands talk to that server over REST.",
    ),
    "logout": _cmd(
        "login_cmd",
        "logout",
        "Forget the stored server and token: commands use the local workspace again.",
    ),
    "alias": _cmd(
        "alias_cmd", "alias_app", "Move and inspect aliases (production, stable, candidate...)."
    ),
    "audit": _cmd("audit_cmd", "audit_app", "Read and verify the tamper-evident audit log."),
    "db": _cmd(
        "db_cmd",
        "db_app",
        "The catalog database: its schema revision, and migrations (`airlock db upgrade`).",
    ),
    "service": _cmd(
        "gateway_cmd",
        "service_app",
        "Services: named endpoints the gateway serves, each with a traffic plan.",
    ),
    "token": _cmd(
        "token_cmd",
        "token_app",
        "Create, list and revoke API tokens (roles: viewer, author, approver, operator, admin).",
    ),
    "policy": _cmd(
        "governance_cmd",
        "policy_app",
        "Promotion policies: rules a release must satisfy to take an alias or be rolled out.",
    ),
    "evals": _cmd(
        "evals_cmd",
        "evals_app",
        "Stored evaluation runs: list a release's runs, show one as `airlock eval` printed it.",
    ),
    "key": _cmd(
        "governance_cmd",
        "key_app",
        "Signing keys: generate ed25519 key pairs; trust public keys (ed25519, EC) and CA "
        "certificates.",
    ),
    "rollout": _cmd(
        "rollout_cmd",
        "rollout_app",
        "Roll a candidate out to a service step by step; watch, pause, promote, roll back.",
    ),
    "drill": _cmd(
        "drill_cmd",
        "drill_app",
        "Rollback drills: roll out a deliberately faulty copy of the stable release and time how "
        "fast it is caught and reverted. `airlock drill SERVICE --fault errors=0.2` runs one.",
    ),
    "feedback": _cmd(
        "feedback_cmd",
        "feedback_app",
        "Users' feedback on a service's answers: export prompts, answers and scores (from "
        "services that keep transcripts) as a JSON Lines dataset.",
    ),
    "judge": _cmd(
        "judge_cmd",
        "judge_app",
        "Calibrate an LLM judge: label answers it scored, see its agreement with people (a "
        "judge below the rollout's min_agreement cannot gate).",
    ),
    "model": _cmd(
        "model_cmd",
        "model_app",
        "Train and try the built-in model (a word n-gram model; no GPU, no downloads).",
    ),
    "gateway-key": _cmd(  # gateway access (issue 10)
        "key_cmd",
        "gateway_key_app",
        "Gateway keys: which clients may call a service's /v1 endpoints (hashed, scoped, "
        "rate-limited, revocable).",
    ),
    "webhook": _cmd(  # events out (issue 14)
        "webhook_cmd",
        "webhook_app",
        "Webhooks: POST audit events (rollout.rollback, alias.move, ...) to a URL, signed with "
        "HMAC-SHA256, retried with backoff.",
    ),
    "import": _cmd(  # OCI layouts and MLflow (issue 14)
        "import_cmd",
        "import_app",
        "Import releases: from an OCI image layout (`--oci DIR`) or from MLflow (`mlflow`).",
    ),
}
"""Every top-level command: name → where it lives and its one-line help (a new command
is added here; tests/cli/test_cli_startup.py fails if a line disagrees with the command)."""


def load_command(name: str, entry: LazyCommand, ctx: click.Context | None = None) -> click.Command:
    """Import ``entry`` and build its click command the way Typer would have.

    Its plain parameters then coerce without pydantic (cli/coercion.py); with the
    parent's ``ctx``, its ``--help`` option too.
    """
    target: Any = getattr(importlib.import_module(entry.module), entry.attr)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    from airlock.cli.coercion import plain_values

    plain_values(command, ctx)
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose commands in :data:`COMMANDS` are imported on first use.

    Listing the commands (the root ``--help``) uses the table only; resolving a
    command imports its module and builds the real command once.
    """

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = self.commands.get(cmd_name)
        if found is not None:
            return found
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self._listing:  # the root's --help: name and one line, no import
            return TyperCommand(name=cmd_name, help=entry.help)
        command = load_command(cmd_name, entry, ctx)
        self.commands[cmd_name] = command
        return command

    def get_help_option(self, ctx: click.Context) -> TyperOption | None:
        from airlock.cli.coercion import make_plain

        option = super().get_help_option(ctx)
        if option is not None:
            make_plain(option)
        return option

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return self._click_resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            # Typer suggests from the loaded commands only; suggest from all of them.
            from difflib import get_close_matches

            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if self.suggest_commands and matches:
                suggestions = ", ".join(f"{m!r}" for m in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise


app = typer.Typer(
    name="airlock",
    cls=LazyGroup,
    help="Version, gate, roll out and roll back generative models safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from airlock import __version__

        typer.echo(f"airlock {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Airlock keeps its catalog and blobs in ./.airlock (see AIRLOCK_HOME, AIRLOCK_DATABASE_URL)."""


START_UP_S = 1.0
"""How long a command runs without the cyclic garbage collector (see :func:`run`)."""


def run() -> None:
    """The ``airlock`` executable.

    Start-up builds ~100,000 objects (modules, classes, SQLAlchemy's tables and
    statements) that live until the process exits; the collector's full passes over
    them are wasted work, a tenth of a quick command's time. So the collector is off
    for the first :data:`START_UP_S` and then back on for a command that runs longer
    (and in a forked child at once); ``gateway/server.settle_heap`` freezes the
    start-up objects of a server for good.
    """
    import gc
    import os
    import threading

    gc.disable()
    os.register_at_fork(after_in_child=gc.enable)
    timer = threading.Timer(START_UP_S, gc.enable)
    timer.daemon = True
    timer.start()
    try:
        app()
    finally:
        gc.freeze()
