"""The CLI against a real server on loopback: a second folder with no database or store
configuration pushes, lists, shows, diffs, pulls and moves aliases over REST, and sees
the same output and the same errors as the server's own workspace."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.config import Settings
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, Server

MakeModel = Callable[..., Path]


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[Cli, Cli, Workspace]]:
    """(the server's own CLI, a laptop's CLI that only has AIRLOCK_URL and a token, workspace)."""
    home = tmp_path / "server" / ".airlock"
    local = Cli(home, {})
    local("init")
    ws = Workspace.open(Settings(home=home, user="alice"))
    carol = Tokens(ws).create(user="carol", role="author", actor=Actor("alice", "admin"))
    with Server(create_app(ws, authenticate=token_authenticator(ws))) as server:
        laptop = Cli(
            tmp_path / "laptop" / ".airlock",  # never created: nothing local is opened
            {
                "AIRLOCK_URL": server.url,
                "AIRLOCK_TOKEN": carol.secret,
                "XDG_CACHE_HOME": str(tmp_path / "laptop-cache"),
                "XDG_CONFIG_HOME": str(tmp_path / "laptop-config"),
            },
        )
        yield local, laptop, ws
    ws.close()
    assert not (tmp_path / "laptop").exists()


def test_remote_commands_match_local(
    remote: tuple[Cli, Cli, Workspace], make_model: MakeModel, tmp_path: Path
) -> None:
    local, laptop, _ = remote
    m1 = make_model("v1", seed=1)
    out = laptop("push", m1, "--name", "chat", "--version", "1.0.0", "--metric", "acc=0.5").output
    assert "pushed chat@1.0.0" in out
    again = laptop("push", m1, "--name", "chat", "--version", "1.0.0", "--metric", "acc=0.5")
    assert "nothing to do" in again.output
    m2 = make_model("v2", seed=2)
    laptop("push", m2, "--name", "chat", "--version", "1.1.0", "--parent", "chat@1.0.0")
    local("alias", "set", "stable", "chat@1.0.0", "--reason", "first")
    local("service", "create", "chat", "--stable", "chat@1.0.0", "--reason", "launch")

    for args in (
        ("ls",),
        ("ls", "chat"),
        ("ls", "chat", "--json"),
        ("ls", "chat", "--limit", "1"),  # a page, and the next cursor: the same keyset
        ("ls", "--limit", "1"),
        ("alias", "history", "chat@stable", "--limit", "1", "--cursor", ""),
        ("show", "chat@1.1.0", "--json"),
        ("show", "chat@stable"),
        ("diff", "chat@1.0.0", "chat@1.1.0"),
        ("diff", "chat@1.0.0", "chat@1.1.0", "--markdown"),
        ("verify", "chat@1.1.0"),
        ("alias", "history", "chat"),
        ("alias", "ls"),
        ("alias", "ls", "chat", "--json"),
        ("service", "ls"),
        ("service", "ls", "--json"),
        ("audit", "log"),
        ("audit", "log", "--json", "--action", "release."),
        ("audit", "log", "--limit", "2", "--subject", "chat@"),
    ):
        assert laptop(*args).output == local(*args).output, args

    laptop("pull", "chat@1.1.0", tmp_path / "pulled")
    for p in m2.iterdir():
        assert (tmp_path / "pulled" / p.name).read_bytes() == p.read_bytes()


def test_remote_errors_match_local(
    remote: tuple[Cli, Cli, Workspace], make_model: MakeModel, tmp_path: Path
) -> None:
    local, laptop, _ = remote
    laptop("push", make_model("v1"), "--name", "chat", "--version", "1.0.0")
    pickled = make_model("pickled", **{"weights.pkl": "not really a pickle"})
    for args in (
        ("push", str(pickled), "--name", "chat", "--version", "1.0.1"),
        ("show", "chat@9.9.9"),
        ("show", "nope@1.0.0"),
        ("ls", "nope"),
        ("pull", "chat@2.0.0", str(tmp_path / "x")),
        ("push", str(tmp_path / "nowhere"), "--name", "chat", "--version", "1.0.1"),
        ("push", str(tmp_path), "--name", "Bad Name!", "--version", "1.0.1"),
        ("push", str(tmp_path), "--name", "chat", "--version", "one"),
    ):
        a, b = laptop(*args, ok=False), local(*args, ok=False)
        assert (a.exit_code, a.output) == (b.exit_code, b.output), args
        assert a.exit_code == 1 and "error:" in a.output
    # the same content under a used version number: the server's Conflict, word for word
    clash = laptop(
        "push", make_model("v2", seed=9), "--name", "chat", "--version", "1.0.0", ok=False
    )
    assert clash.exit_code == 1 and "a version number is never reused" in clash.output
    # a command with no remote form yet says so, and does not pretend to be the server
    gc = laptop("gc", "--dry-run", ok=False)
    assert gc.exit_code == 1
    assert "works on the local workspace" in gc.output and "no Airlock workspace" in gc.output
    # an author may not move aliases, remotely either
    denied = laptop("alias", "set", "production", "chat@1.0.0", "--reason", "x", ok=False)
    assert denied.exit_code == 1
    assert "carol" in denied.output and "alias.move" in denied.output


def test_login_stores_the_server_in_a_private_file(
    remote: tuple[Cli, Cli, Workspace], tmp_path: Path
) -> None:
    _, laptop, _ = remote
    url, token = laptop.env.pop("AIRLOCK_URL"), laptop.env.pop("AIRLOCK_TOKEN")
    bad = laptop("login", url, "--token", "alk_wrong", ok=False)
    assert bad.exit_code == 1
    assert "logged in" in laptop("login", url, "--token", token).output
    saved = tmp_path / "laptop-config" / "airlock" / "remote.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert "no models yet" in laptop("ls").output  # talks to the server, no workspace here
    assert "logged out" in laptop("logout").output
    assert not saved.exists()
