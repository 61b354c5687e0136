"""`airlock export --oci` and `airlock import --oci` through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from airlock_testkit import Cli

MakeModel = Callable[..., Path]


def test_export_then_import_into_another_workspace(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    cli("push", make_model(seed=4), "--name", "chat", "--version", "1.0.0", "--metric", "acc=0.7")
    out = tmp_path / "oci"
    exported = cli("export", "chat@1.0.0", "--oci", out, "--family", "tiny").output
    assert "exported chat@1.0.0" in exported and f"{out}:1.0.0" in exported
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "1.0.0"}
    assert (out / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'

    same = cli("import", "--oci", out).output
    assert "nothing to do" in same

    other = Cli(tmp_path / "other" / ".airlock", {})
    other("init")
    imported = other("import", "--oci", out).output
    assert "imported chat@1.0.0" in imported
    assert "the same release as the exported chat@1.0.0 (same digest)" in imported
    mine = json.loads(cli("show", "chat@1.0.0", "--json").output)
    theirs = json.loads(other("show", "chat@1.0.0", "--json").output)
    assert theirs == mine  # the same manifest, author and time included, and the same digest
    renamed = other("import", "--oci", out, "--version", "1.0.1").output
    assert "imported chat@1.0.1" in renamed and "a new release digest" in renamed


def test_import_needs_a_source_and_names_bad_input(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    nothing = cli("import", ok=False)
    assert nothing.exit_code == 1 and "say what to import from" in nothing.output
    missing = cli("import", "--oci", tmp_path / "nope", ok=False)
    assert missing.exit_code == 1 and "no OCI layout at" in missing.output
    both = cli("import", "--oci", tmp_path, "mlflow", "--tracking-uri", "x", ok=False)
    assert both.exit_code == 1 and "cannot be combined" in both.output
    gone = cli("export", "chat@1.0.0", "--oci", tmp_path / "o", ok=False)
    assert gone.exit_code == 1 and "no model named 'chat'" in gone.output
    for args in (("export", "--help"), ("import", "--help"), ("import", "mlflow", "--help")):
        assert cli(*args).output.strip()
