"""The real CLI end to end: init, push, ls, show, diff, alias, pull, verify, audit."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from airlock.store import LocalStore
from airlock_testkit import Cli

MakeModel = Callable[..., Path]


def test_lifecycle(cli: Cli, make_model: MakeModel, tmp_path: Path) -> None:
    cli("init")
    m1 = make_model("v1", seed=1)
    notes = tmp_path / "notes.yaml"
    notes.write_text("summary: First release\ncaveats: [English only]\n")
    out = cli(
        "push", m1, "--name", "chat", "--version", "1.0.0", "--notes", notes, "--metric", "acc=0.5"
    ).output
    assert "pushed chat@1.0.0" in out
    m2 = make_model("v2", seed=1)
    (m2 / "config.json").write_text('{"architecture": "tiny", "hidden": 16}')
    data = tmp_path / "train.jsonl"
    data.write_text('{"q": 1}\n')
    cli(
        "push", m2, "--name", "chat", "--version", "1.1.0", "--parent", "chat@1.0.0",
        "--dataset", f"tickets={data}", "--metric", "acc=0.7", "--code-commit", "abc123",
    )  # fmt: skip
    again = cli("push", m2, "--name", "chat", "--version", "1.1.0", "--parent", "chat@1.0.0",
                "--dataset", f"tickets={data}", "--metric", "acc=0.7", "--code-commit", "abc123")  # fmt: skip
    assert "nothing to do" in again.output

    listing = cli("ls").output
    assert "chat" in listing and "2" in listing
    assert "1.1.0" in cli("ls", "chat").output
    shown = cli("show", "chat@1.1.0").output
    assert "safetensors, 2 tensors" in shown and "chat@1.0.0" in shown and "tickets" in shown
    manifest = json.loads(cli("show", "chat@1.1.0", "--json").output)
    assert manifest["version"] == "1.1.0" and manifest["lineage"]["code"]["commit"] == "abc123"

    d = cli("diff", "chat@1.0.0", "chat@1.1.0").output
    assert "config.json" in d and "acc" in d and "+0.2" in d
    md = cli("diff", "chat@1.0.0", "chat@1.1.0", "--markdown").output
    assert md.startswith("# chat@1.1.0") and "| acc | 0.5 | 0.7 | +0.2 |" in md

    cli("alias", "set", "production", "chat@1.0.0", "--reason", "launch")
    moved = cli("alias", "set", "production", "chat@1.1.0", "--reason", "better answers").output
    assert "1.0.0 → 1.1.0" in moved
    hist = cli("alias", "history", "chat@production").output
    assert "launch" in hist and "better answers" in hist
    assert "production" in cli("show", "chat@production").output

    cli("pull", "chat@production", tmp_path / "out")
    assert (tmp_path / "out" / "config.json").read_text() == (m2 / "config.json").read_text()

    assert "ok" in cli("verify").output
    verified = cli("audit", "verify").output
    assert "ok: 5 event(s)" in verified
    lines = cli("audit", "log", "--json").output.strip().splitlines()
    actions = [json.loads(line)["action"] for line in lines]
    # init issues the owner's admin token: who holds admin belongs in the log too
    assert actions == ["token.create", "release.push", "release.push", "alias.move", "alias.move"]
    only_moves = cli("audit", "log", "--action", "alias.move").output
    assert "release.push" not in only_moves and "alias.move" in only_moves


def test_errors_are_one_line_with_a_hint(cli: Cli, make_model: MakeModel) -> None:
    r = cli("ls", ok=False)
    assert r.exit_code == 1 and "no Airlock workspace" in r.output and "airlock init" in r.output
    cli("init")
    r = cli("show", "chat@1.0.0", ok=False)
    assert r.exit_code == 1 and "error: no model named 'chat'" in r.output and "hint:" in r.output
    m = make_model(seed=3)
    r = cli("push", m, "--name", "chat", "--version", "one", ok=False)
    assert r.exit_code == 1 and "not a semantic version" in r.output
    (m / "model.pt").write_bytes(b"\x80\x04K\x01.")
    r = cli("push", m, "--name", "chat", "--version", "1.0.0", ok=False)
    assert r.exit_code == 1 and "--allow-pickle" in r.output
    assert "Traceback" not in r.output


def test_the_progress_bar_shows_only_once_the_bytes_are_counted(
    tmp_path: Path, make_model: MakeModel
) -> None:
    cli = Cli(tmp_path / ".airlock", {"AIRLOCK_NO_PROGRESS": ""})  # bars on, as in a terminal
    cli("init")
    m = make_model(seed=4)
    refused = cli("push", m, "--name", "chat", "--version", "one", ok=False)
    assert refused.exit_code == 1 and "not a semantic version" in refused.output
    assert "push chat@one" not in refused.output  # the error alone, no empty bar before it
    pushed = cli("push", m, "--name", "chat", "--version", "1.0.0").output
    assert "push chat@1.0.0" in pushed and "pushed chat@1.0.0" in pushed
    assert "verify" in cli("verify").output.splitlines()[0]


def test_verify_and_pull_catch_a_flipped_byte(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    cli("push", make_model(seed=5), "--name", "chat", "--version", "1.0.0")
    store = LocalStore(tmp_path / ".airlock")
    manifest = json.loads(cli("show", "chat@1.0.0", "--json").output)
    blob = next(f["digest"] for f in manifest["files"] if f["path"].endswith(".safetensors"))
    path = store.path_of(blob)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))
    r = cli("verify", ok=False)
    assert r.exit_code == 1 and "damaged" in r.output and "chat@1.0.0" in r.output
    r = cli("pull", "chat@1.0.0", tmp_path / "dest", ok=False)
    assert r.exit_code == 1 and "damaged" in r.output and not (tmp_path / "dest").exists()


def test_audit_verify_reports_an_edited_event(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    import sqlite3

    cli("init")
    cli("push", make_model(seed=6), "--name", "chat", "--version", "1.0.0")
    cli("alias", "set", "production", "chat@1.0.0", "--reason", "go")
    head = cli("audit", "head").output.split()
    assert head[0] == "3"  # token.create, release.push, alias.move
    with sqlite3.connect(tmp_path / ".airlock" / "catalog.db") as db:
        db.execute("UPDATE events SET actor='mallory' WHERE seq=2")
    r = cli("audit", "verify", ok=False)
    assert r.exit_code == 1 and "event 2" in r.output and "edited" in r.output


def test_every_command_has_help() -> None:
    import typer

    from airlock.cli.main import app

    click_app = typer.main.get_command(app)
    assert click_app.help

    def walk(cmd: object, path: str) -> list[tuple[str, object]]:
        found = [(path, cmd)]
        for name, sub in getattr(cmd, "commands", {}).items():
            found += walk(sub, f"{path} {name}")
        return found

    for path, cmd in walk(click_app, "airlock"):
        assert getattr(cmd, "help", None), f"`{path}` has no help text"


def test_a_dataset_is_its_content_not_where_it_sat(
    cli: Cli, make_model: Callable[..., Path], tmp_path: Path
) -> None:
    cli("init")
    model = make_model("m")
    first, second = tmp_path / "here", tmp_path / "elsewhere" / "deeper"
    for folder in (first, second):
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text('{"q": 1}\n')
    push = ("push", str(model), "--name", "chat", "--version", "1.0.0", "--dataset")
    cli(*push, f"tickets={first / 'train.jsonl'}")
    again = cli(*push, f"tickets={second / 'train.jsonl'}").output
    assert "nothing to do" in again  # the same bytes from another folder: the same release
    manifest = json.loads(cli("show", "chat@1.0.0", "--json").output)
    [dataset] = manifest["lineage"]["datasets"]
    assert dataset["digest"].startswith("sha256:") and not dataset.get("uri")
    (second / "train.jsonl").write_text('{"q": 2}\n')
    changed = cli(*push, f"tickets={second / 'train.jsonl'}", ok=False)
    assert changed.exit_code != 0 and "1.0.0" in changed.output
