"""The governance commands against a real server on loopback: a laptop folder with only
AIRLOCK_URL and a token sets policies, checks, approves, trusts keys, signs (the private key
stays on the laptop), runs evaluations (on the server) and reads notes, and sees the same
output and the same errors as the server's own workspace."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.client import Client
from airlock.config import Settings
from airlock.errors import InvalidInput
from airlock.runtime.builtin_model import train
from airlock.services.evals import Evals
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.signatures import load_private_key
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, Server

EXAMPLES = Path(str(resources.files("airlock") / "examples"))
NOTE = "works on the local workspace"
POLICY = """# lumen rules
stages:
  production:
    approvals: {required: 1}
    require_signature: true
    evals: [{suite: quality, min_pass_rate: 0.4, max_regression: 0.05}]
risk_classes:
  - name: new-weights
    when: {files_changed: true}
    require: {approvals: 2, min_canary_minutes: 30}
"""


@dataclass
class Site:
    """The server's workspace and a laptop that reaches it only over REST, per token."""

    root: Path
    server: Server
    ws: Workspace
    tokens: dict[str, str]  # user -> secret: alice admin, carol author, bob approver, vera viewer

    def local(self, user: str) -> Cli:
        return Cli(self.root / "server" / ".airlock", {"AIRLOCK_TOKEN": self.tokens[user]})

    def laptop(self, user: str) -> Cli:
        return Cli(
            self.root / "laptop" / ".airlock",  # never created: nothing local is opened
            {
                "AIRLOCK_URL": self.server.url,
                "AIRLOCK_TOKEN": self.tokens[user],
                "XDG_CACHE_HOME": str(self.root / "laptop-cache"),
                "XDG_CONFIG_HOME": str(self.root / "laptop-config"),
            },
        )

    def same(self, user: str, *args: Any, exit_code: int = 0) -> str:
        """Run on both sides; the exit code and every character of the output agree."""
        remote = self.laptop(user)(*args, ok=False)
        local = self.local(user)(*args, ok=False)
        assert (remote.exit_code, remote.output) == (local.exit_code, local.output), args
        assert remote.exit_code == exit_code, (args, remote.output)
        assert NOTE not in remote.output
        return str(remote.output)

    def remote(self, user: str, *args: Any) -> Any:
        result = self.laptop(user)(*args)
        assert NOTE not in result.output
        return result


def lumen(root: Path, corpus: str) -> Path:
    """The built-in model trained on an example corpus, with the example components."""
    folder = root / Path(corpus).stem
    train((EXAMPLES / corpus).read_text("utf-8"), order=3).save(folder)
    for name in ("prompt_template.yaml", "decoding.yaml", "safety_policy.yaml"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("governance")
    home = root / "server" / ".airlock"
    Cli(home, {})("init")
    ws = Workspace.open(Settings(home=home, user="alice"))
    admin = Actor("alice", "admin")
    tokens = {"alice": (home / "token").read_text().strip()}
    for user, role in (("carol", "author"), ("bob", "approver"), ("vera", "viewer")):
        tokens[user] = Tokens(ws).create(user=user, role=role, actor=admin).secret
    registry = Registry(ws)
    carol = Actor("carol", "author")
    registry.push(lumen(root, "corpus_v1.txt"), name="lumen", version="1.0.0", actor=carol)
    v2 = lumen(root, "corpus_v2.txt")
    registry.push(v2, name="lumen", version="1.1.0", actor=carol, parent="lumen@1.0.0")
    with Server(create_app(ws, authenticate=token_authenticator(ws))) as server:
        yield Site(root, server, ws, tokens)
    ws.close()
    assert not (root / "laptop").exists()


def test_policies_and_checks_match_local(site: Site) -> None:
    policy = site.root / "policy.yaml"
    policy.write_text(POLICY)
    out = site.remote("alice", "policy", "set", "lumen", policy, "--reason", "first rules").output
    assert "policy of lumen: v1" in out and "risk classes: 1" in out
    site.same("alice", "policy", "set", "lumen", policy)  # identical text: nothing to do
    for args in (
        ("policy", "show", "lumen"),
        ("policy", "show", "lumen", "--version", "1"),
        ("policy", "history"),
        ("policy", "history", "lumen", "--json"),
    ):
        site.same("vera", *args)
    blocked = site.same("vera", "check", "lumen@1.1.0", "--for", "production", exit_code=1)
    assert "risk class new-weights" in blocked and "blocked by" in blocked
    site.same("vera", "check", "lumen@1.1.0", "--for", "production", "--json", exit_code=1)
    site.same("vera", "check", "lumen@1.0.0", "--for", "staging")  # no rules for staging
    for user, args in (
        ("vera", ("policy", "show", "nope")),
        ("vera", ("policy", "show", "lumen", "--version", "7")),
        ("vera", ("check", "lumen@9.9.9", "--for", "production")),
        ("vera", ("check", "lumen@1.1.0", "--for", "Not A Stage")),
        ("carol", ("policy", "set", "lumen", policy)),  # an author may not set policies
        ("alice", ("policy", "set", "lumen", site.root / "missing.yaml")),
    ):
        assert "error:" in site.same(user, *args, exit_code=1), args
    bad = site.root / "bad.yaml"
    bad.write_text("stages: {production: {approvals: {required: many}}}\n")
    assert "error:" in site.same("alice", "policy", "set", "lumen", bad, exit_code=1)


def test_approvals_keys_and_signatures_match_local(site: Site) -> None:
    out = site.remote("bob", "approve", "lumen@1.1.0", "--for", "production", "--comment", "ok")
    assert "approved lumen@1.1.0 for production" in out.output
    assert "already approved" in site.same(
        "bob", "approve", "lumen@1.1.0", "--for", "production", exit_code=1
    )
    assert "may not release.approve" in site.same(
        "carol", "approve", "lumen@1.1.0", "--for", "production", exit_code=1
    )
    assert "needs a reason" in site.same(
        "bob", "reject", "lumen@1.0.0", "--for", "production", "--comment", " ", exit_code=1
    )
    site.remote("bob", "reject", "lumen@1.0.0", "--for", "production", "--comment", "old lamp")

    key = site.root / "keys" / "ci"
    site.laptop("carol")("key", "generate", key)  # local by design: the private key stays here
    signed = site.remote("carol", "sign", "lumen@1.1.0", "--key", key, "--out", site.root / "s")
    assert "signed lumen@1.1.0 with untrusted key" in signed.output
    assert "not trusted" in signed.output
    assert "already signed" in site.same("carol", "sign", "lumen@1.1.0", "--key", key)
    site.same("vera", "signatures", "lumen@1.1.0", exit_code=1)  # not trusted yet
    assert "may not release.sign" in site.same(
        "vera", "sign", "lumen@1.1.0", "--key", key, exit_code=1
    )
    assert "may not key.trust" in site.same(
        "carol", "key", "trust", f"{key}.pub", "--name", "ci", exit_code=1
    )
    assert "no trusted keys" in site.same("vera", "key", "ls")

    assert (
        "trusted key ci"
        in site.remote("alice", "key", "trust", f"{key}.pub", "--name", "ci").output
    )
    site.same("alice", "key", "trust", f"{key}.pub", "--name", "ci")  # the same key: no change
    for args in (
        ("key", "ls"),
        ("key", "ls", "--json"),
        ("signatures", "lumen@1.1.0"),
        ("signatures", "lumen@1.1.0", "--json"),
        (
            "signatures",
            "lumen@1.1.0",
            "--bundle",
            site.root / "s",
            "--path",
            site.root / "corpus_v2",
        ),
        ("verify", "lumen@1.1.0"),  # the blobs, and the signature checks
    ):
        assert "valid" in site.same("vera", *args) or args[1] == "ls"
    # a bundle naming a trusted key must verify with it: a forged one is refused, not stored
    forged = json.loads((site.root / "s").read_text())
    entry = forged["dsseEnvelope"]["signatures"][0]
    sig = bytearray(base64.b64decode(entry["sig"]))
    sig[0] ^= 1
    entry["sig"] = base64.b64encode(bytes(sig)).decode("ascii")
    with (
        Client(site.server.url, site.tokens["carol"]) as api,
        pytest.raises(InvalidInput, match="does not verify with key ci"),
    ):
        api.add_signature("lumen@1.1.0", json.dumps(forged))
    site.same("vera", "signatures", "lumen@1.0.0", exit_code=1)  # unsigned
    site.same("vera", "signatures", "nope@1.0.0", exit_code=1)
    site.same("alice", "key", "revoke", "nobody", "--reason", "x", exit_code=1)

    # OpenSSF: an EC key signs here; the server checks the model.sig against the files
    ec_key = site.root / "keys" / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    openssf = ("sign", "lumen@1.1.0", "--key", ec_key, "--format", "openssf")
    assert "(openssf)" in site.remote("carol", *openssf).output
    assert "already signed" in site.same("carol", *openssf)

    # a bundle over another release is refused by the server, whoever made it
    other = site.root / "other.sig"
    site.remote("carol", "sign", "lumen@1.0.0", "--key", key, "--out", other)
    with (
        Client(site.server.url, site.tokens["carol"]) as api,
        pytest.raises(InvalidInput, match=r"not over lumen@1\.1\.0"),
    ):
        api.add_signature("lumen@1.1.0", other.read_text())
    with Client(site.server.url, site.tokens["carol"]) as api:  # the SDK signs the same way
        again = api.sign("lumen@1.1.0", load_private_key(key))
    assert again["result"]["created"] is False and again["trusted"] is True
    site.remote("alice", "key", "revoke", "ci", "--reason", "rotated")
    site.same("vera", "key", "ls")
    assert "was revoked" in site.same("vera", "signatures", "lumen@1.1.0", exit_code=1)


def test_evaluations_run_on_the_server_and_show_everywhere(site: Site) -> None:
    quality = EXAMPLES / "suites" / "quality.yaml"
    ran = site.remote(
        "carol", "eval", "lumen@1.1.0", "--suite", quality, "--baseline", "lumen@1.0.0", "--cases"
    ).output
    assert "suite quality" in ran and "significantly better" in ran and "connect-app" in ran
    shown = site.same("vera", "evals", "show", "1", "--cases")
    assert shown.replace("run #1", "") == ran.replace("run #1", "")  # the same rendering
    record = json.loads(
        site.remote("carol", "eval", "lumen@1.0.0", "--suite", quality, "--json").stdout
    )
    (stored,) = [r for r in Evals(site.ws).runs("lumen@1.0.0") if r.suite == "quality"]
    assert record == stored.document()  # what --json prints is the server's stored record

    # a JSONL suite is read on the laptop: its name (the file's stem) and cases reach the server
    tiny = site.root / "tiny-suite.jsonl"
    tiny.write_text(
        '{"id": "hi", "prompt": "hello", "checks": [{"max_chars": 2000}]}\n'
        '{"id": "lamp", "prompt": "the lamp", "checks": [{"max_chars": 2000}]}\n'
    )
    remote = json.loads(
        site.remote("carol", "eval", "lumen@1.1.0", "--suite", tiny, "--json").stdout
    )
    local = json.loads(site.local("carol")("eval", "lumen@1.1.0", "--suite", tiny, "--json").stdout)
    assert remote["suite"] == local["suite"] and remote["suite"]["name"] == "tiny-suite"
    assert remote["summary"] == local["summary"]
    assert [c["output"] for c in remote["cases"]] == [c["output"] for c in local["cases"]]

    for args in (
        ("show", "lumen@1.1.0"),  # with its approvals, evaluations and signatures tables
        ("show", "lumen@1.0.0"),
        ("diff", "lumen@1.0.0", "lumen@1.1.0"),  # with the evaluations side by side
        ("notes", "lumen@1.1.0"),
        ("evals", "ls", "lumen@1.1.0"),
        ("evals", "ls", "lumen@1.1.0", "--json"),
        ("evals", "show", "1", "--cases"),  # as `airlock eval` printed it, from the record
        ("evals", "show", "1", "--json"),
        ("notes", "lumen@1.0.0", "--for", "staging"),
        ("check", "lumen@1.1.0", "--for", "production"),
    ):
        out = site.same("vera", *args, exit_code=1 if args[0] == "check" else 0)
        if args[0] in ("show", "diff"):
            assert "evaluations" in out and "quality" in out, args
    shown = site.same("vera", "show", "lumen@1.1.0")
    assert "approvals" in shown and "bob" in shown and "signatures" in shown
    for user, args in (
        ("carol", ("eval", "lumen@9.9.9", "--suite", quality)),
        ("carol", ("eval", "lumen@1.1.0", "--suite", site.root / "missing.yaml")),
        ("carol", ("eval", "lumen@1.1.0", "--suite", quality, "--confidence", "2")),
        ("carol", ("eval", "lumen@1.1.0", "--suite", quality, "--baseline", "lumen@1.1.0")),
        ("vera", ("eval", "lumen@1.1.0", "--suite", quality)),  # a viewer records nothing
        ("vera", ("notes", "lumen@9.9.9")),
        ("vera", ("evals", "show", "999")),
        ("vera", ("evals", "ls", "nope@1.0.0")),
    ):
        assert "error:" in site.same(user, *args, exit_code=1), args


def test_a_run_rebuilt_from_the_api_is_the_run_the_service_returned(site: Site) -> None:
    """``airlock eval`` renders the same EvalRun on both sides: the remote one is rebuilt
    from the stored record the server answers with."""
    from airlock.cli.governance_backend import eval_run_of
    from airlock.services.evals import load_suite, stored_run

    suite = load_suite(EXAMPLES / "suites" / "safety.yaml")
    run = Evals(site.ws).run(
        "lumen@1.1.0", suite, actor=Actor("carol", "author"), baseline="lumen@1.0.0"
    )
    with Client(site.server.url, site.tokens["vera"]) as api:
        assert eval_run_of(api.evaluation(run.id)) == run
    assert stored_run(Evals(site.ws).record(run.id)) == run  # `airlock evals show`, locally
