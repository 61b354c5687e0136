"""The CLI starts fast: it imports only what the command being run needs.

Heavy imports (SQLAlchemy, numpy, scipy, FastAPI, uvicorn, httpx, safetensors)
belong inside the command that needs them; `airlock --help` and the parsing of
every command's options must not pay for them. The root group is lazy
(cli/main.py ``COMMANDS``): `airlock --help` imports no command module at all,
and `airlock ls` only what listing releases needs. Timings live in bench/cli.py;
these tests check what is imported, which is what makes the time.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer import _click as click

from airlock.cli.main import COMMANDS, LazyGroup, app, load_command

HEAVY = ("sqlalchemy", "numpy", "scipy", "fastapi", "uvicorn", "httpx", "safetensors", "alembic")
NOT_FOR_LS = (
    "pydantic",  # Typer's adapters (cli/coercion.py) and manifests: not for a listing
    "pydantic_core",
    "typer._adapters",
    "numpy",
    "scipy",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "boto3",
    "botocore",
    "safetensors",
    "alembic",
    "yaml",
    "airlock.gateway",
    "airlock.runtime",
    "airlock.api",
    "airlock.web",
    "airlock.services.ingest",
    "airlock.services.tokens",  # AIRLOCK_TOKEN is read from config; no token is checked
    "airlock.core.policy",
    "airlock.core.manifest",  # a manifest (pydantic) is read by show, not by ls
    "airlock.core.diff",
)
LS_CLI_MODULES = {
    "airlock.cli.main",
    "airlock.cli.coercion",  # plain option values without pydantic
    "airlock.cli.common",
    "airlock.cli.backend",  # local workspace or remote server (AIRLOCK_URL)
    "airlock.cli.paging",  # --limit / --cursor
    "airlock.cli.registry_cmds",
    "airlock.cli.render",
}


def _imported_by(args: list[str], watched: tuple[str, ...], env: dict[str, str]) -> list[str]:
    """Run the real ``airlock ARGS`` in a fresh interpreter; which ``watched`` got imported."""
    code = (
        "import atexit, json, sys\n"
        f"watched = {watched!r}\n"
        "def report():\n"
        "    found = sorted({w for w in watched for m in sys.modules"
        " if m == w or m.startswith(w + '.')})\n"
        "    cli = sorted(m for m in sys.modules if m.startswith('airlock.cli.'))\n"
        "    sys.__stderr__.write('\\nIMPORTED ' + json.dumps([found, cli]) + '\\n')\n"
        "atexit.register(report)\n"
        f"sys.argv = ['airlock', *{args!r}]\n"
        "from airlock.cli.main import run\n"
        "run()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRLOCK_NO_PROGRESS": "1", **env},
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    line = out.stderr.rsplit("IMPORTED ", 1)[1]
    found, cli_modules = json.loads(line)
    return [*found, *cli_modules]


def test_building_every_command_imports_no_heavy_library() -> None:
    code = (
        "import sys, json, typer\n"
        "from typer import _click as click\n"
        "from airlock.cli.main import app\n"
        "root = typer.main.get_command(app)\n"
        "ctx = click.Context(root, info_name='airlock')\n"
        "built = [root.get_command(ctx, n) for n in root.list_commands(ctx)]\n"
        "assert all(c is not None for c in built)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_help_imports_no_command_module(tmp_path: Path) -> None:
    watched = (*HEAVY, "pydantic")
    imported = _imported_by(["--help"], watched, {"AIRLOCK_HOME": str(tmp_path / ".airlock")})
    assert imported == ["airlock.cli.coercion", "airlock.cli.main"]


def _airlock(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-c", "from airlock.cli.main import run; run()", *args],
        env={**os.environ, "AIRLOCK_NO_PROGRESS": "1", **env},
        capture_output=True,
        check=True,
    )


@pytest.mark.parametrize(
    "args", [["ls"], ["ls", "chat"], ["ls", "--limit", "2", "--json"], ["ls", "chat", "--json"]]
)
def test_ls_imports_only_what_listing_needs(tmp_path: Path, args: list[str]) -> None:
    env = {"AIRLOCK_HOME": str(tmp_path / ".airlock"), "AIRLOCK_USER": "alice"}
    _airlock(["init"], env)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("weights\n")
    _airlock(["push", str(tmp_path / "model"), "--name", "chat", "--version", "1.0.0"], env)
    imported = _imported_by(args, NOT_FOR_LS, env)
    assert [m for m in imported if not m.startswith("airlock.cli.")] == []
    assert {m for m in imported if m.startswith("airlock.cli.")} <= LS_CLI_MODULES


def test_the_collector_is_back_on_after_start_up_and_the_end_is_frozen() -> None:
    """``run`` turns the cyclic GC off for start-up only: a long command (serve, a
    controller) and a forked child collect as usual."""
    code = (
        "import gc, os, sys, threading\n"
        "from airlock.cli import main\n"
        "main.START_UP_S = 2.0\n"
        "sys.argv = ['airlock', '--version']\n"
        "try:\n"
        "    main.run()\n"
        "except SystemExit:\n"
        "    pass\n"
        "during = gc.isenabled()\n"
        "frozen = gc.get_freeze_count() > 0\n"
        "gc.unfreeze()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if gc.isenabled() else 1)\n"
        "child = os.waitpid(pid, 0)[1] == 0\n"
        "for t in threading.enumerate():\n"
        "    if isinstance(t, threading.Timer):\n"
        "        t.join()\n"
        "print(frozen, during, child, gc.isenabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # frozen at the end (the exit's collection skips what dies with the process)
    assert out.stdout.split()[-4:] == ["True", "False", "True", "True"]


def test_the_lazy_table_says_what_each_command_says() -> None:
    """Each COMMANDS line names a real command and lists its own first help paragraph."""
    for name, entry in COMMANDS.items():
        command = load_command(name, entry)
        assert command.name == name
        first = command.short_help or inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert entry.help == first, f"update COMMANDS[{name!r}].help in cli/main.py"
        assert not command.hidden and not command.deprecated


def test_an_unknown_command_suggests_from_every_command() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["rolout"])
    assert result.exit_code == 2
    assert "No such command 'rolout'. Did you mean 'rollout'" in result.output


def test_the_root_lists_every_command_in_typers_order() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    ctx = click.Context(root, info_name="airlock")
    names = root.list_commands(ctx)
    assert names == list(COMMANDS)
    assert names.index("export") < names.index("alias")  # commands first, then groups
