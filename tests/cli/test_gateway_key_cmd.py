"""``airlock gateway-key`` through the real CLI, and ``airlock gateway``/``serve`` refusing
to serve open off loopback."""

from __future__ import annotations

import json
from pathlib import Path

from airlock.runtime.builtin_model import train
from airlock_testkit import Cli


def _service(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "chat-model"
    train("The moon is bright. The moon is round.").save(folder)
    cli("init")
    cli("push", folder, "--name", "chat", "--version", "1.0.0")
    cli("service", "create", "chat", "--stable", "chat@1.0.0")


def test_create_ls_revoke(cli: Cli, tmp_path: Path) -> None:
    _service(cli, tmp_path)
    created = cli(
        "gateway-key",
        "create",
        "--service",
        "chat",
        "--name",
        "web",
        "--rpm",
        "60",
        "--can-pin",
        "--no-can-feedback",
        "--expires",
        "30d",
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ak-")
    listed = json.loads(cli("gateway-key", "ls", "--json").stdout)
    [key] = listed
    assert secret.startswith(f"ak-{key['id']}-") and secret not in json.dumps(listed)
    assert key["scopes"] == ["can_pin"] and key["rpm"] == 60 and key["state"] == "active"
    table = cli("gateway-key", "ls").stdout
    assert key["id"] in table and "web" in table and secret not in table

    assert "revoked gateway key" in cli("gateway-key", "revoke", key["id"], "--reason", "x").stdout
    assert json.loads(cli("gateway-key", "ls", "--json").stdout) == []
    assert json.loads(cli("gateway-key", "ls", "--all", "--json").stdout)[0]["state"] == "revoked"
    audit = cli("audit", "log").stdout
    assert "gateway_key.create" in audit and "gateway_key.revoke" in audit


def test_bad_input_is_one_line(cli: Cli, tmp_path: Path) -> None:
    _service(cli, tmp_path)
    for args, words in [
        (("--service", "nope", "--name", "a"), "no service named"),
        (("--service", "chat", "--name", "a", "--rpm", "0"), "--rpm"),
        (("--service", "chat", "--name", "a", "--expires", "someday"), "invalid expiry"),
    ]:
        r = cli("gateway-key", "create", *args, ok=False)
        assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output
    r = cli("gateway-key", "revoke", "0123456789ab", ok=False)
    assert r.exit_code != 0 and "no gateway key" in r.output


def test_gateway_and_serve_refuse_to_start_open_off_loopback(cli: Cli, tmp_path: Path) -> None:
    _service(cli, tmp_path)
    for command in ("gateway", "serve"):
        r = cli(command, "--host", "0.0.0.0", "--port", "1", ok=False)
        assert r.exit_code != 0, command
        assert "refusing to serve the gateway open on 0.0.0.0" in r.output
        assert "--insecure-open" in r.output and "Traceback" not in r.output
