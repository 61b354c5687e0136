"""Release signatures: a valid one verifies; a changed byte or a wrong key fails; a policy
that requires a signature blocks an unsigned release."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from airlock.catalog.schema import signatures
from airlock.core import signing
from airlock.errors import Conflict, InvalidInput, PolicyViolation
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.signatures import (
    generate_key,
    key_id_of,
    load_private_key,
    public_pem,
)
from airlock.services.workspace import Workspace

ALICE = Actor("alice", "admin")
BOT = Actor("release-bot", "author")
MakeModel = Callable[..., Path]


@pytest.fixture
def signed(workspace: Workspace, make_model: MakeModel) -> tuple[Workspace, Ed25519PrivateKey]:
    Registry(workspace).push(make_model("m", seed=1), name="chat", version="1.0.0", actor=ALICE)
    key = Ed25519PrivateKey.generate()
    Governance(workspace).trust_key(public_pem(key.public_key()), name="ci", actor=ALICE)
    return workspace, key


def _tamper(ws: Workspace, fn: Callable[[dict[str, object]], None]) -> None:
    gov = Governance(ws)
    bundle = json.loads(gov.signatures.bundles(gov.registry.resolve("chat@1.0.0"))[0].bundle)
    fn(bundle)
    with ws.db.write() as conn:
        conn.execute(update(signatures).values(bundle=json.dumps(bundle)))


def test_a_valid_signature_verifies(signed: tuple[Workspace, Ed25519PrivateKey]) -> None:
    ws, key = signed
    gov = Governance(ws)
    result = gov.sign("chat@1.0.0", key, actor=BOT)
    assert (
        result.created and result.key_name == "ci" and result.key_id == key_id_of(key.public_key())
    )
    [check] = gov.verify_signatures("chat@1.0.0")
    assert check.valid and check.signed_by == "release-bot" and check.key_name == "ci"
    assert not gov.sign("chat@1.0.0", key, actor=BOT).created  # once per key

    # the statement is an in-toto v1 statement with the model-signing predicate
    parsed = signing.parse_bundle(result.bundle)
    statement = parsed.statement()
    manifest = gov.registry.manifest("chat@1.0.0")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == sorted(f.path for f in manifest.files)
    assert (
        statement["predicate"]["airlock"]["release_digest"]
        == gov.registry.resolve("chat@1.0.0").digest
    )
    assert json.loads(result.bundle)["dsseEnvelope"]["payloadType"] == signing.PAYLOAD_TYPE


def test_a_changed_byte_in_the_signed_statement_fails(
    signed: tuple[Workspace, Ed25519PrivateKey],
) -> None:
    ws, key = signed
    Governance(ws).sign("chat@1.0.0", key, actor=BOT)

    def flip(bundle: dict[str, object]) -> None:
        env = bundle["dsseEnvelope"]
        assert isinstance(env, dict)
        payload = bytearray(base64.b64decode(env["payload"]))
        payload[payload.index(b'"digest":"') + 10] ^= 0x01  # one byte of a file digest
        env["payload"] = base64.b64encode(bytes(payload)).decode()

    _tamper(ws, flip)
    [check] = Governance(ws).verify_signatures("chat@1.0.0")
    assert not check.valid and "does not verify with key ci" in check.why


def test_a_changed_byte_in_the_signature_fails(
    signed: tuple[Workspace, Ed25519PrivateKey],
) -> None:
    ws, key = signed
    Governance(ws).sign("chat@1.0.0", key, actor=BOT)

    def flip(bundle: dict[str, object]) -> None:
        env = bundle["dsseEnvelope"]
        assert isinstance(env, dict)
        sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
        sig[0] ^= 0x80
        env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    _tamper(ws, flip)
    assert not Governance(ws).verify_signatures("chat@1.0.0")[0].valid


def test_a_wrong_or_untrusted_key_fails(signed: tuple[Workspace, Ed25519PrivateKey]) -> None:
    ws, trusted = signed
    gov = Governance(ws)
    stranger = Ed25519PrivateKey.generate()
    result = gov.sign("chat@1.0.0", stranger, actor=BOT)
    assert result.key_name is None
    [check] = gov.verify_signatures("chat@1.0.0")
    assert not check.valid and "is not trusted" in check.why

    # a stranger's signature that claims to be made with the trusted key
    def claim_trusted(bundle: dict[str, object]) -> None:
        env = bundle["dsseEnvelope"]
        assert isinstance(env, dict)
        env["signatures"][0]["keyid"] = key_id_of(trusted.public_key())

    _tamper(ws, claim_trusted)
    [check] = gov.verify_signatures("chat@1.0.0")
    assert not check.valid and "does not verify with key ci" in check.why


def test_a_signature_does_not_transfer_to_another_release(
    signed: tuple[Workspace, Ed25519PrivateKey], make_model: MakeModel
) -> None:
    ws, key = signed
    gov = Governance(ws)
    gov.sign("chat@1.0.0", key, actor=BOT)
    folder = make_model("m2", seed=1)
    with (folder / "config.json").open("ab") as f:
        f.write(b" ")  # one byte more
    Registry(ws).push(folder, name="chat", version="1.0.1", actor=ALICE)
    bundle = gov.signatures.bundles(gov.registry.resolve("chat@1.0.0"))[0]
    other = gov.registry.resolve("chat@1.0.1")
    with ws.db.write() as conn:
        conn.execute(update(signatures).values(release_id=other.id))
    [check] = gov.verify_signatures("chat@1.0.1")
    assert not check.valid
    assert "signed for 'chat@1.0.0', not chat@1.0.1" in check.why
    assert "config.json: content differs from the signed digest" in check.why
    assert bundle.key_id == key_id_of(key.public_key())


def test_a_folder_on_disk_is_checked_against_a_bundle(
    signed: tuple[Workspace, Ed25519PrivateKey], tmp_path: Path
) -> None:
    ws, key = signed
    gov = Governance(ws)
    bundle = gov.sign("chat@1.0.0", key, actor=BOT).bundle
    gov.registry.pull("chat@1.0.0", tmp_path / "pulled")
    assert gov.signatures.verify_folder(bundle, tmp_path / "pulled").valid
    weights = next((tmp_path / "pulled").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    check = gov.signatures.verify_folder(bundle, tmp_path / "pulled")
    assert not check.valid and f"{weights.name}: content differs" in check.why
    (tmp_path / "pulled" / "extra.txt").write_text("x")
    assert (
        "extra.txt: present but not signed"
        in gov.signatures.verify_folder(bundle, tmp_path / "pulled").why
    )


def test_policy_requiring_a_signature_blocks_an_unsigned_release(
    signed: tuple[Workspace, Ed25519PrivateKey],
) -> None:
    ws, key = signed
    gov, reg = Governance(ws), Registry(ws)
    gov.set_policy("chat", "stages: {production: {require_signature: true}}", actor=ALICE)
    with pytest.raises(PolicyViolation, match="signature \\(unsigned; run `airlock sign"):
        reg.set_alias("production", "chat@1.0.0", actor=ALICE, reason="go")
    gov.sign("chat@1.0.0", Ed25519PrivateKey.generate(), actor=BOT)  # an untrusted key
    with pytest.raises(PolicyViolation, match="no valid signature by a trusted key"):
        reg.set_alias("production", "chat@1.0.0", actor=ALICE, reason="go")
    gov.sign("chat@1.0.0", key, actor=BOT)
    assert reg.set_alias("production", "chat@1.0.0", actor=ALICE, reason="go").moved
    gov.revoke_key("ci", actor=ALICE, reason="key rotated")
    verdict = gov.check("chat@1.0.0", "staging")
    assert verdict.ok  # no rules for staging
    verdict = gov.check("chat@1.0.0", "production")
    assert not verdict.ok and "revoked" in verdict.failures[0].why


def test_key_files_and_trust(tmp_path: Path, workspace: Workspace) -> None:
    private, public, kid = generate_key(tmp_path / "keys" / "release")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    key = load_private_key(private)
    assert key_id_of(key.public_key()) == kid
    with pytest.raises(Conflict, match="already exists"):
        generate_key(tmp_path / "keys" / "release")
    gov = Governance(workspace)
    row = gov.trust_key(public.read_text(), name="release", actor=ALICE)
    assert row.key_id == kid
    assert gov.trust_key(public.read_text(), name="again", actor=ALICE).name == "release"
    with pytest.raises(Conflict, match="already trusted"):
        gov.trust_key(
            public_pem(Ed25519PrivateKey.generate().public_key()), name="release", actor=ALICE
        )
    gov.revoke_key("release", actor=ALICE, reason="rotated")
    with pytest.raises(Conflict, match="stays revoked"):
        gov.trust_key(public.read_text(), name="release2", actor=ALICE)
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        gov.trust_key("hello", name="bad", actor=ALICE)
    (tmp_path / "rsa.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(InvalidInput, match="not an unencrypted PEM private key"):
        load_private_key(tmp_path / "rsa.pem")
