"""`airlock service quality`: set a service's default quality settings from a file (the settings
or a rollout spec's `quality:` section), show them (also in `service show`), clear them; a bad
file is an error naming the field, with no traceback and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from airlock.config import Settings
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import MOON, Releases

SETTINGS = """\
sample: 0.25
scorers:
  no_refusal: {check: {refusal: false}, tolerance: 0.5}
  has_keys: {check: {json: true, required_keys: [answer]}, weight: 2}
"""


def _setup(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"))
    try:
        Releases(ws, tmp_path / "folders").builtin("chat", "1.0.0", MOON)
    finally:
        ws.close()
    cli("service", "create", "chat", "--stable", "chat@1.0.0")


def test_set_show_and_clear_a_service_s_quality_defaults(cli: Cli, tmp_path: Path) -> None:
    _setup(cli, tmp_path)
    none = cli("service", "quality", "chat")
    assert "has no default quality settings" in none.output

    path = tmp_path / "quality.yaml"
    path.write_text(SETTINGS)
    out = cli("service", "quality", "chat", "--file", path, "--reason", "refusals").output
    assert "sample: 25 % of answers" in out
    assert 'quality.has_keys: {"json": true, "required_keys": ["answer"]}' in out
    shown = cli("service", "show", "chat").output
    assert "default quality settings (for rollouts whose spec has none)" in shown
    assert "quality.no_refusal" in shown

    spec = tmp_path / "spec.yaml"  # a rollout spec's quality section will do
    spec.write_text("strategy: canary\nsteps: [{weight_pct: 5}]\nquality:\n  sample: 0.5\n"
                    "  scorers: {short: {check: {max_words: 40}}}\n")  # fmt: skip
    cli("service", "quality", "chat", "-f", spec)
    data = json.loads(cli("service", "quality", "chat", "--json").output)
    assert data["quality"]["sample"] == 0.5 and list(data["quality"]["scorers"]) == ["short"]

    cleared = cli("service", "quality", "chat", "--clear").output
    assert "has no default quality settings" in cleared
    actions = [json.loads(line) for line in cli("audit", "log", "--json").output.splitlines()]
    assert sum(1 for e in actions if e["action"] == "service.quality") == 3


def test_a_bad_file_is_an_error_naming_the_field(cli: Cli, tmp_path: Path) -> None:
    _setup(cli, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample: 0.1\nscorers:\n  no_refusal: {check: {refusal: false}, weight: 0}\n")
    result = cli("service", "quality", "chat", "--file", bad, ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "quality.scorers.no_refusal.weight" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("sample: [0.1\n")
    result = cli("service", "quality", "chat", "--file", broken, ok=False)
    assert result.exit_code != 0 and "not valid YAML or JSON at line" in result.output
    both = cli("service", "quality", "chat", "--file", bad, "--clear", ok=False)
    assert both.exit_code != 0 and "--file and --clear do not go together" in both.output
    assert "has no default quality settings" in cli("service", "quality", "chat").output
