"""Rollouts, drills, services, gateway keys and tokens over REST: a laptop with only
AIRLOCK_URL and a token sees the same output and the same errors as the server's own
workspace, the services decide who may do what either way, and nothing local is created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.config import Settings
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, Server, write_model

CANARY = """
strategy: canary
steps:
  - {weight_pct: 10, bake_seconds: 600}
  - {weight_pct: 100, bake_seconds: 600}
analysis: {min_requests: 50, max_step_seconds: 1200}
"""


@dataclass
class Sides:
    local: Cli  # the server's own workspace, as alice (admin, the owner's token file)
    laptop: Cli  # only AIRLOCK_URL and alice's token
    ws: Workspace
    root: Path
    secrets: dict[str, str]  # user -> token secret

    def as_user(self, user: str, *, remote: bool) -> Cli:
        """The CLI on either side holding ``user``'s token."""
        base = self.laptop if remote else self.local
        return Cli(
            Path(base.env["AIRLOCK_HOME"]), {**base.env, "AIRLOCK_TOKEN": self.secrets[user]}
        )

    def both(self, *args: str, ok: bool = True) -> tuple[str, str]:
        """(remote output, local output) of one read-only command."""
        a, b = self.laptop(*args, ok=ok), self.local(*args, ok=ok)
        assert a.exit_code == b.exit_code, (args, a.output, b.output)
        return a.output, b.output


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    root = tmp_path_factory.mktemp("remote-ops")
    home = root / "server" / ".airlock"
    local = Cli(home, {})
    local("init")
    for version, seed in (("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)):
        local(
            "push",
            write_model(root / f"m{seed}", seed=seed),
            "--name",
            "chat",
            "--version",
            version,
        )
    ws = Workspace.open(Settings(home=home, user="alice"))
    admin = Actor("alice", "admin")
    secrets = {"alice": (home / "token").read_text().strip()}
    for user, role in (("olga", "operator"), ("vic", "viewer"), ("carol", "author")):
        secrets[user] = Tokens(ws).create(user=user, role=role, actor=admin).secret
    with Server(create_app(ws, authenticate=token_authenticator(ws))) as server:
        laptop = Cli(
            root / "laptop" / ".airlock",  # never created: nothing local is opened
            {
                "AIRLOCK_URL": server.url,
                "AIRLOCK_TOKEN": secrets["alice"],
                "XDG_CACHE_HOME": str(root / "laptop-cache"),
                "XDG_CONFIG_HOME": str(root / "laptop-config"),
            },
        )
        (root / "canary.yaml").write_text(CANARY)
        yield Sides(local, laptop, ws, root, secrets)
    ws.close()
    assert not (root / "laptop").exists()


def _same_error(sides: Sides, *args: str, user: str = "alice") -> str:
    a = sides.as_user(user, remote=True)(*args, ok=False)
    b = sides.as_user(user, remote=False)(*args, ok=False)
    assert (a.exit_code, a.output) == (b.exit_code, b.output), args
    assert a.exit_code != 0 and "error:" in a.output
    return str(a.output)


def test_rollouts_remotely_match_local(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    strategy = str(sides.root / "canary.yaml")
    made = laptop("service", "create", "web", "--stable", "chat@1.0.0", "--reason", "launch")
    twin = local("service", "create", "api", "--stable", "chat@1.0.0", "--reason", "launch")
    assert made.output.replace("web", "api") == twin.output
    assert "created service web serving chat@1.0.0" in made.output
    for args in (
        ("rollout", "plan", "web", "--strategy", strategy, "--rps", "20", "--error-rate", "0.01"),
        ("rollout", "plan", "web", "--strategy", strategy, "--rps", "5", "--json"),
        ("rollout", "history"),
    ):
        remote, here = sides.both(*args)
        assert remote == here, args

    started = laptop(
        "rollout", "start", "web", "--candidate", "chat@1.1.0", "--strategy", strategy,
        "--reason", "try 1.1",
    )  # fmt: skip
    assert "rollout #1 of web: chat@1.1.0 (canary, 2 step(s)); step 1/2: 10 %" in started.output
    for args in (
        ("rollout", "status", "web"),
        ("rollout", "status", "web", "--json"),
        ("rollout", "history"),
        ("rollout", "history", "web", "--json"),
        ("rollout", "history", "--rollout", "1"),
        ("rollout", "history", "--rollout", "1", "--json"),
        ("service", "show", "web", "--json"),
    ):
        remote, here = sides.both(*args)
        assert remote == here, args
    status = json.loads(laptop("rollout", "status", "web", "--json").output)
    assert (status["phase"], status["candidate_weight_pct"]) == ("progressing", 10.0)

    # each transition prints the same line whichever side made it
    paused = laptop("rollout", "pause", "web", "--reason", "lunch").output
    assert "pause → paused" in paused
    local("rollout", "resume", "web", "--reason", "back")
    assert local("rollout", "pause", "web", "--reason", "lunch").output == paused
    resumed = laptop("rollout", "resume", "web", "--reason", "back").output
    assert "resume → progressing" in resumed

    aborted = laptop("rollout", "abort", "web", "--reason", "wrong build").output
    assert "abort → aborted" in aborted
    # --watch of an ended rollout: one JSON line, exit 1 (it did not go well), either side
    remote, here = sides.both("rollout", "status", "web", "--watch", "--json", ok=False)
    assert remote == here and json.loads(remote)["phase"] == "aborted"

    laptop("rollout", "start", "web", "--candidate", "chat@1.2.0", "--strategy", strategy)
    rolled = laptop("rollout", "rollback", "web", "--reason", "users complain").output
    assert "rollback → rolled_back" in rolled and "plan generation" in rolled  # the new plan
    remote, here = sides.both("rollout", "history", "web")
    assert remote == here and "#2" in remote and "rolled_back" in remote


def test_service_ls_during_a_rollout_matches_local(sides: Sides) -> None:
    sides.local("service", "create", "busy", "--stable", "chat@1.0.0")
    strategy = str(sides.root / "canary.yaml")
    sides.local("rollout", "start", "busy", "--candidate", "chat@1.1.0", "--strategy", strategy)
    try:
        remote, here = sides.both("service", "ls")
        assert remote == here and "chat@1.1.0 10%" in remote
    finally:
        sides.local("rollout", "abort", "busy", "--reason", "test over")


def test_rollout_errors_match_local(sides: Sides) -> None:
    strategy = str(sides.root / "canary.yaml")
    sides.local("service", "create", "errs", "--stable", "chat@1.0.0")
    assert "no service named 'nope'" in _same_error(sides, "rollout", "status", "nope")
    _same_error(sides, "rollout", "history", "nope")
    _same_error(sides, "rollout", "history", "--rollout", "999")
    _same_error(sides, "rollout", "pause", "errs", "--reason", "x")  # nothing in flight
    _same_error(
        sides, "rollout", "start", "errs", "--candidate", "chat@9.9.9", "--strategy", strategy
    )
    bad = sides.root / "bad.yaml"
    bad.write_text("strategy: canary\nsteps: [{weight_pct: 250}]\n")
    _same_error(
        sides, "rollout", "start", "errs", "--candidate", "chat@1.1.0", "--strategy", str(bad)
    )
    _same_error(sides, "rollout", "plan", "errs", "--strategy", strategy)  # no traffic yet
    # a viewer may read but not steer, remotely either; the denial names who and what
    denied = _same_error(
        sides,
        "rollout", "start", "errs", "--candidate", "chat@1.1.0", "--strategy", strategy,
        user="vic",
    )  # fmt: skip
    assert "vic" in denied and "rollout.start" in denied
    assert sides.as_user("vic", remote=True)("rollout", "history", "errs").exit_code == 0


def test_services_remotely_match_local(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    laptop("service", "create", "svc", "--stable", "chat@1.1.0", "--reason", "second")
    out = laptop("service", "opt-out", "svc", "amy").output
    assert out == "amy kept on the stable release of svc\n"
    assert laptop("service", "opt-out", "svc", "amy").output.endswith("(no change)\n")
    for args in (("service", "show", "svc"), ("service", "show", "svc", "--json")):
        remote, here = sides.both(*args)
        assert remote == here, args
    assert "opted out (always stable): amy" in laptop("service", "show", "svc").output
    back = laptop("service", "opt-out", "svc", "amy", "--undo").output
    assert back == "amy back in rollouts of svc\n"
    assert local("service", "opt-out", "svc", "amy", "--undo").output == back.replace(
        "\n", " (no change)\n"
    )  # the server's catalog is the one the laptop changed

    on = laptop("service", "transcripts", "svc", "--on", "--retention", "12h", "--reason", "evals")
    assert "transcripts of svc: on, kept 12h" in on.output
    for args in (
        ("service", "transcripts", "svc"),
        ("service", "transcripts", "svc", "--json"),
        ("service", "transcripts", "svc", "--purge", "--json"),
    ):
        remote, here = sides.both(*args)
        assert remote == here, args
    purged = json.loads(laptop("service", "transcripts", "svc", "--purge", "--json").output)
    assert purged["purged"] == {"transcripts": 0, "feedback": 0, "pairs": 0} and purged["enabled"]

    _same_error(sides, "service", "show", "nope")
    _same_error(sides, "service", "create", "svc", "--stable", "chat@1.0.0")  # exists
    _same_error(sides, "service", "create", "other", "--stable", "chat@7.0.0")
    _same_error(sides, "service", "transcripts", "svc", "--off", user="vic")
    denied = _same_error(sides, "service", "opt-out", "svc", "bob", user="vic")
    assert "vic" in denied and "service.configure" in denied
    _same_error(sides, "service", "create", "mine", "--stable", "chat@1.0.0", user="carol")


def test_service_quality_defaults_remotely_match_local(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    laptop("service", "create", "judged", "--stable", "chat@1.0.0")
    path = sides.root / "quality.yaml"
    path.write_text("sample: 0.2\nscorers:\n  no_refusal: {check: {refusal: false}}\n")
    set_out = laptop("service", "quality", "judged", "--file", str(path), "--reason", "refusals")
    assert "quality.no_refusal" in set_out.output
    for args in (
        ("service", "quality", "judged"),
        ("service", "quality", "judged", "--json"),
        ("service", "show", "judged"),
        ("service", "show", "judged", "--json"),
    ):
        remote, here = sides.both(*args)
        assert remote == here, args
    shown = json.loads(local("service", "quality", "judged", "--json").output)
    assert shown["quality"]["sample"] == 0.2 and shown["updated_by"] == "alice"
    bad = sides.root / "bad-quality.yaml"
    bad.write_text("sample: 2\n")
    assert "quality.sample" in _same_error(
        sides, "service", "quality", "judged", "--file", str(bad)
    )
    _same_error(sides, "service", "quality", "judged", "--clear", user="vic")
    cleared = laptop("service", "quality", "judged", "--clear", "--json").output
    assert json.loads(cleared)["quality"] is None
    assert "no default quality settings" in local("service", "quality", "judged").output


def test_drills_remotely(sides: Sides) -> None:
    for args in (("drill", "history"), ("drill", "history", "--json")):
        remote, here = sides.both(*args)
        assert remote == here, args
    sides.local("service", "create", "drilled", "--stable", "chat@1.0.0")
    # this API server has no gateway to drill: it says so and how, and changes nothing
    out = sides.laptop("drill", "drilled", "--fault", "errors=0.2", ok=False).output
    assert "drills run inside `airlock serve`" in out and "error:" in out
    assert (
        "--url drives a gateway"
        in sides.laptop(
            "drill", "drilled", "--fault", "errors=0.2", "--url", "http://127.0.0.1:1", ok=False
        ).output
    )
    _same_error(sides, "drill", "drilled", "--fault", "errors=2")  # refused before any call
    assert "no drills yet" in sides.laptop("drill", "history").output


def test_gateway_keys_remotely_match_local(sides: Sides) -> None:
    laptop = sides.laptop
    sides.local("service", "create", "keyed", "--stable", "chat@1.0.0")
    op = sides.as_user("olga", remote=True)
    made = op(
        "gateway-key", "create", "--service", "keyed", "--name", "web-app", "--rpm", "60",
        "--can-pin", "--expires", "30d",
    )  # fmt: skip
    assert "created gateway key" in made.output and "scopes: can_pin, can_feedback" in made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("alk-gw-") or len(secret) > 40
    for args in (
        ("gateway-key", "ls"),
        ("gateway-key", "ls", "--json"),
        ("gateway-key", "ls", "--service", "keyed", "--all"),
    ):
        remote, here = sides.both(*args)
        assert remote == here, args
    key_id = json.loads(laptop("gateway-key", "ls", "--json").output)[0]["id"]
    assert secret not in laptop("gateway-key", "ls", "--json").output
    revoked = op("gateway-key", "revoke", key_id, "--reason", "leaked").output
    assert revoked == f"revoked gateway key {key_id} (web-app) of keyed\n"
    remote, here = sides.both("gateway-key", "ls", "--all", "--json")
    assert remote == here and json.loads(remote)[0]["state"] == "revoked"

    _same_error(sides, "gateway-key", "create", "--service", "nope", "--name", "x")
    _same_error(sides, "gateway-key", "create", "--service", "keyed", "--name", "web-app")
    _same_error(sides, "gateway-key", "revoke", "0123456789ab")
    denied = _same_error(
        sides, "gateway-key", "create", "--service", "keyed", "--name", "y", user="vic"
    )
    assert "vic" in denied and "gateway_key.create" in denied


def test_tokens_remotely_match_local_and_stay_private(sides: Sides) -> None:
    laptop = sides.laptop
    made = laptop("token", "create", "--user", "dan", "--role", "approver", "--note", "ci")
    assert "created token" in made.output and "for dan (approver)" in made.output
    dan = made.output.strip().splitlines()[-1]
    assert dan.startswith("alk_")
    for args in (
        ("token", "ls"),
        ("token", "ls", "--json"),
        ("token", "ls", "--user", "dan", "--json"),
        ("token", "whoami"),
    ):
        remote, here = sides.both(*args)
        assert remote == here, args
    # a non-admin sees only its own tokens, remotely too; asking for another's is refused
    for user in ("carol", "vic"):
        remote = sides.as_user(user, remote=True)("token", "ls", "--json").output
        here = sides.as_user(user, remote=False)("token", "ls", "--json").output
        assert remote == here and {t["user"] for t in json.loads(remote)} == {user}
    assert "carol (author)" in sides.as_user("carol", remote=True)("token", "whoami").output
    denied = _same_error(sides, "token", "ls", "--user", "alice", user="carol")
    assert "carol (author) may only list their own tokens" in denied
    _same_error(sides, "token", "create", "--user", "eve", "--role", "admin", user="carol")
    _same_error(sides, "token", "create", "--user", "eve", "--role", "boss")
    _same_error(sides, "token", "create", "--user", "eve", "--role", "viewer", "--expires", "1y")
    _same_error(sides, "token", "revoke", "ffffffffffff")

    dan_id = json.loads(laptop("token", "ls", "--user", "dan", "--json").output)[0]["id"]
    denied = _same_error(sides, "token", "revoke", dan_id, user="carol")
    assert "token.revoke" in denied
    out = laptop("token", "revoke", dan_id, "--reason", "rotated").output
    assert out == f"revoked token {dan_id} of dan (approver)\n"
    remote, here = sides.both("token", "ls", "--all", "--json")
    assert remote == here
    assert {t["state"] for t in json.loads(remote) if t["user"] == "dan"} == {"revoked"}


def test_a_remote_drill_runs_in_the_server_and_reports_like_a_local_one(tmp_path: Path) -> None:
    """Against `airlock serve`, `airlock drill` starts the drill in the server, follows its
    rollout, and prints the result the server stored, as a local drill prints its own."""
    from airlock.demo import prepare, scenario
    from airlock.serve import AirlockApp, RunningServer, ServeSettings

    demo = prepare(tmp_path / "demo")
    running = RunningServer(AirlockApp(demo.ws, ServeSettings(port=0, sync_seconds=0.5))).start()
    try:
        running.wait_ready()
        env = {
            "AIRLOCK_TOKEN": demo.secrets["maya"],
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        laptop = Cli(tmp_path / "laptop" / ".airlock", {**env, "AIRLOCK_URL": running.url})
        local = Cli(demo.ws.home, env)
        spec = tmp_path / "drill.yaml"
        spec.write_text(
            "strategy: canary\nsteps: [{weight_pct: 30, bake_seconds: 30}]\n"
            "analysis: {min_requests: 50, max_step_seconds: 60}\n"
        )
        out = laptop(
            "drill", scenario.SERVICE, "--fault", "errors=0.5", "--strategy", spec,
            "--rps", "80", "--timeout", "90",
        ).output  # fmt: skip
        assert f"drill #1 of {scenario.SERVICE}: detected and rolled back" in out
        assert "time to detect" in out and "lumen@1.0.0-drill.1 (errors=50%)" in out
        for args in (("drill", "history"), ("drill", "history", "--json")):
            assert laptop(*args).output == local(*args).output, args
        [drill] = json.loads(laptop("drill", "history", "--json").output)
        assert drill["outcome"] == "detected" and drill["result"]["rollout_phase"] == "rolled_back"
        busy = laptop("rollout", "status", scenario.SERVICE, "--json").output
        assert json.loads(busy)["kind"] == "drill"
    finally:
        running.stop()
        demo.ws.close()
    assert not (tmp_path / "laptop").exists()
