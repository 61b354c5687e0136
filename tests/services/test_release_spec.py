"""Release specs assemble a release from files anywhere; bad ones leave nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from airlock import audit
from airlock.catalog.schema import events, releases
from airlock.config import Settings
from airlock.errors import InvalidInput
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.spec import load_spec
from airlock.services.workspace import Workspace
from airlock_testkit import Cli

MakeModel = Callable[..., Path]


def write_spec(folder: Path, files: list[tuple[str, str]], version: str = "1.0.0") -> Path:
    lines = ["name: chat", f"version: '{version}'", "files:"]
    lines += [f"  - {{path: '{p}', source: '{s}'}}" for p, s in files]
    lines += ["metrics: {accuracy: 0.8}", "notes: {summary: from a spec, caveats: [small]}"]
    spec = folder / "release.yaml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def test_spec_push_maps_files_from_anywhere(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    m = make_model("src", seed=1)
    spec = write_spec(
        tmp_path,
        [("weights/a.safetensors", "models/src/model-00000-of-00002.safetensors"),
         ("config.json", "models/src/config.json")],
    )  # fmt: skip
    cli("init")
    cli("push", "--spec", spec)
    shown = cli("show", "chat@1.0.0", "--json").output
    assert "weights/a.safetensors" in shown
    assert '"summary": "from a spec"' in shown
    assert (m / "config.json").exists()


@pytest.mark.parametrize(
    ("path", "version", "message"),
    [
        ("../escape.json", "1.0.0", "'..'"),
        ("/etc/config.json", "1.0.0", "absolute"),
        ("a\\\\b.json", "1.0.0", "backslash"),
        ("w.safetensors", "1.0", "semantic version"),
        ("dup", "1.0.0", "duplicate file path"),
    ],
)
def test_rejected_specs_leave_nothing_behind(
    cli: Cli, make_model: MakeModel, tmp_path: Path, path: str, version: str, message: str
) -> None:
    make_model("src", seed=2)
    files = [("config.json", "models/src/config.json")]
    if path == "dup":
        files.append(("config.json", "models/src/model-00000-of-00002.safetensors"))
    else:
        files.append((path, "models/src/model-00001-of-00002.safetensors"))
    spec = write_spec(tmp_path, files, version=version)
    cli("init")
    r = cli("push", "--spec", spec, ok=False)
    assert r.exit_code == 1
    assert message in r.output
    ws = Workspace.open(Settings(home=tmp_path / ".airlock"))
    try:
        with ws.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(releases)).scalar_one() == 0
            actions = conn.execute(select(events.c.action)).scalars().all()
            assert actions == ["token.create"]  # only init's own event
        assert list(ws.store.digests()) == []
    finally:
        ws.close()


def test_spec_with_unknown_field_names_it(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: chat\nversion: 1.0.0\nfiles: []\nweights: x\n")
    with pytest.raises(InvalidInput, match="weights"):
        load_spec(spec)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 3)),
        st.tuples(st.just("alias"), st.sampled_from(["production", "stable"]), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, data=st.data())
def test_any_pushes_and_alias_moves_leave_a_chain_that_verifies(
    tmp_path_factory: pytest.TempPathFactory,
    make_model: MakeModel,
    ops: list[tuple[object, ...]],
    data: st.DataObject,
) -> None:
    home = tmp_path_factory.mktemp("ws") / ".airlock"
    ws = Workspace.open(Settings(home=home, user="alice"), create=True)
    reg = Registry(ws)
    actor = Actor("alice")
    pushed: set[int] = set()
    try:
        for op in [("push", 0), *ops]:
            if op[0] == "push":
                n = int(str(op[1]))
                reg.push(make_model(f"p{n}", seed=n), name="chat", version=f"1.{n}.0", actor=actor)
                pushed.add(n)
            elif pushed:
                n = sorted(pushed)[int(str(op[2])) % len(pushed)]
                reg.set_alias(str(op[1]), f"chat@1.{n}.0", actor=actor, reason="move")
        with ws.db.read() as conn:
            report = audit.verify(conn)
            seqs = [e.seq for e in audit.entries(conn)]
        assert report.ok
        assert report.checked == len(seqs)
        victim = data.draw(st.sampled_from(seqs))
        with ws.db.write() as conn:
            conn.execute(update(events).where(events.c.seq == victim).values(actor="mallory"))
        with ws.db.read() as conn:
            broken = audit.verify(conn)
        assert broken.problem is not None
        assert broken.problem.seq == victim
    finally:
        ws.close()
