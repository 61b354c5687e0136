"""OpenSSF model-signing interop, with the real ``model-signing`` package in both directions:
``airlock sign --format openssf`` writes a model.sig that model_signing verifies, and a folder
signed by model_signing (EC key or certificate) is verified when pushed and recorded."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airlock.config import Settings
from airlock.core import openssf_signing
from airlock.errors import InvalidInput, NotFound
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock_testkit import Cli

model_signing = pytest.importorskip("model_signing", reason="the dev extra installs model-signing")
from model_signing import hashing, signing, verifying  # noqa: E402

ALICE = Actor("alice", "admin")
PEM = serialization.Encoding.PEM
MakeModel = Callable[..., Path]


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.with_suffix(".pub").write_bytes(
        key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A self-signed CA (P-384) and a code-signing leaf certificate (P-256) it issued."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Airlock Test CA"))
        .issuer_name(_name("Airlock Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA384())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("release-signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA384())
    )
    d = tmp_path / "pki"
    d.mkdir()
    (d / "ca.pem").write_bytes(ca.public_bytes(PEM))
    (d / "leaf.pem").write_bytes(leaf.public_bytes(PEM))
    _write_key(leaf_key, d / "leaf.key")
    return {"ca": d / "ca.pem", "cert": d / "leaf.pem", "key": d / "leaf.key"}


@pytest.fixture
def ws(sqlite_settings: Settings) -> Workspace:
    w = Workspace.open(sqlite_settings, create=True)
    yield w  # type: ignore[misc]
    w.close()


@pytest.fixture
def cli(cli: Cli) -> Cli:
    cli("init")
    return cli


def run(cli: Cli, *args: object, ok: bool = True) -> Any:
    return cli(*[str(a) for a in args], ok=ok)


def _ms_sign_with_key(folder: Path, key: Path) -> None:
    hc = hashing.Config().set_ignored_paths(paths=["model.sig"])
    signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(hc).sign(
        folder, folder / "model.sig"
    )


def _ms_sign_with_cert(folder: Path, pki: dict[str, Path]) -> None:
    hc = hashing.Config().set_ignored_paths(paths=["model.sig"])
    signing.Config().use_certificate_signer(
        private_key=pki["key"], signing_certificate=pki["cert"], certificate_chain=[pki["ca"]]
    ).set_hashing_config(hc).sign(folder, folder / "model.sig")


# -- airlock signs, model-signing verifies --------------------------------------------------


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_model_signing_verifies_what_airlock_signs_with_a_key(
    cli: Cli, make_model: MakeModel, tmp_path: Path, curve: ec.EllipticCurve
) -> None:
    key = _write_key(ec.generate_private_key(curve), tmp_path / "ec.pem")
    folder = make_model("m", seed=1)
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")  # model-signing skips it
    run(cli, "push", folder, "--name", "chat", "--version", "1.0.0")
    run(cli, "key", "trust", key.with_suffix(".pub"), "--name", "ci-ec")
    pulled = tmp_path / "pulled"
    run(cli, "pull", "chat@1.0.0", pulled)
    out = run(
        cli,
        "sign",
        "chat@1.0.0",
        "--key",
        key,
        "--format",
        "openssf",
        "--out",
        pulled / "model.sig",
    )
    assert "signed chat@1.0.0 with ci-ec (openssf)" in out.output

    verifying.Config().use_elliptic_key_verifier(public_key=key.with_suffix(".pub")).verify(
        pulled, pulled / "model.sig"
    )
    # recorded with the release and valid for Airlock too
    checks = run(cli, "signatures", "chat@1.0.0", "--json").output
    [check] = json.loads(checks)
    assert check["valid"] and check["key_name"] == "ci-ec"

    # one changed byte: model-signing refuses the folder, naming the file
    victim = next(p for p in sorted(pulled.iterdir()) if p.suffix == ".safetensors")
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=victim.name):
        verifying.Config().use_elliptic_key_verifier(public_key=key.with_suffix(".pub")).verify(
            pulled, pulled / "model.sig"
        )


def test_model_signing_verifies_what_airlock_signs_with_a_certificate(
    cli: Cli, make_model: MakeModel, tmp_path: Path, pki: dict[str, Path]
) -> None:
    run(cli, "push", make_model("m", seed=2), "--name", "chat", "--version", "1.0.0")
    run(cli, "key", "trust", pki["ca"], "--name", "corp-ca")
    pulled = tmp_path / "pulled"
    run(cli, "pull", "chat@1.0.0", pulled)
    args = ["--format", "openssf", "--cert", pki["cert"], "--chain", pki["ca"]]
    run(cli, "sign", "chat@1.0.0", "--key", pki["key"], *args, "--out", pulled / "model.sig")
    verifying.Config().use_certificate_verifier(certificate_chain=[pki["ca"]]).verify(
        pulled, pulled / "model.sig"
    )
    [check] = json.loads(run(cli, "signatures", "chat@1.0.0", "--json").output)
    assert check["valid"] and check["key_name"] == "corp-ca"
    assert "release-signer" in check["why"]


def test_sign_openssf_refuses_an_ed25519_key_and_a_cert_for_another_key(
    cli: Cli, make_model: MakeModel, tmp_path: Path, pki: dict[str, Path]
) -> None:
    run(cli, "push", make_model("m", seed=3), "--name", "chat", "--version", "1.0.0")
    run(cli, "key", "generate", tmp_path / "ed")
    r = run(cli, "sign", "chat@1.0.0", "--key", tmp_path / "ed", "--format", "openssf", ok=False)
    assert r.exit_code != 0 and "not an elliptic-curve key" in r.output
    other = _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "other.pem")
    r = run(
        cli,
        "sign",
        "chat@1.0.0",
        "--key",
        other,
        "--format",
        "openssf",
        "--cert",
        pki["cert"],
        ok=False,
    )
    assert r.exit_code != 0 and "is not for the key" in r.output


# -- model-signing signs, airlock verifies on push -------------------------------------------


def test_a_folder_signed_by_model_signing_with_a_key_is_verified_and_recorded(
    ws: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    key = _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "ec.pem")
    folder = make_model("m", seed=4)
    _ms_sign_with_key(folder, key)
    gov = Governance(ws)
    gov.trust_key(key.with_suffix(".pub").read_text(), name="vendor", actor=ALICE)
    Registry(ws).push(folder, name="chat", version="1.0.0", actor=ALICE)

    [check] = gov.verify_signatures("chat@1.0.0")
    assert check.valid and check.key_name == "vendor" and check.signed_by == "alice"
    # the policy rule accepts it
    gov.set_policy("chat", "stages:\n  production:\n    require_signature: true\n", actor=ALICE)
    verdict = gov.check("chat@1.0.0", "production")
    [rule] = [r for r in verdict.results if r.rule == "signature"]
    assert rule.passed and "vendor" in rule.why
    # model.sig is kept with the release: the pulled folder verifies with model-signing
    pulled = tmp_path / "pulled"
    Registry(ws).pull("chat@1.0.0", pulled)
    verifying.Config().use_elliptic_key_verifier(public_key=key.with_suffix(".pub")).verify(
        pulled, pulled / "model.sig"
    )


def test_a_folder_signed_with_a_certificate_is_verified_and_a_revoked_ca_stops_counting(
    ws: Workspace, make_model: MakeModel, pki: dict[str, Path]
) -> None:
    folder = make_model("m", seed=5)
    _ms_sign_with_cert(folder, pki)
    gov = Governance(ws)
    gov.trust_key(pki["ca"].read_text(), name="corp-ca", actor=ALICE)
    Registry(ws).push(folder, name="chat", version="1.0.0", actor=ALICE)
    [check] = gov.verify_signatures("chat@1.0.0")
    assert check.valid and check.key_name == "corp-ca"

    gov.revoke_key("corp-ca", actor=ALICE, reason="rotated")
    [check] = gov.verify_signatures("chat@1.0.0")
    assert not check.valid and "revoked" in check.why


def test_a_changed_file_refuses_the_push_naming_the_file(
    ws: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    key = _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "ec.pem")
    folder = make_model("m", seed=6)
    _ms_sign_with_key(folder, key)
    Governance(ws).trust_key(key.with_suffix(".pub").read_text(), name="vendor", actor=ALICE)
    (folder / "README.md").write_text("changed after signing\n")
    with pytest.raises(InvalidInput, match=r"model\.sig does not verify.*README\.md"):
        Registry(ws).push(folder, name="chat", version="1.0.0", actor=ALICE)
    with pytest.raises(NotFound):
        Registry(ws).resolve("chat@1.0.0")  # nothing recorded


def test_an_untrusted_signer_refuses_the_push_and_says_how_to_trust(
    ws: Workspace, make_model: MakeModel, tmp_path: Path, pki: dict[str, Path]
) -> None:
    key = _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "ec.pem")
    folder = make_model("m", seed=7)
    _ms_sign_with_key(folder, key)
    with pytest.raises(InvalidInput, match="not trusted") as err:
        Registry(ws).push(folder, name="chat", version="1.0.0", actor=ALICE)
    assert "airlock key trust" in err.value.hint
    cert_folder = make_model("c", seed=8)
    _ms_sign_with_cert(cert_folder, pki)
    with pytest.raises(InvalidInput, match="does not chain to a trusted CA"):
        Registry(ws).push(cert_folder, name="chat", version="1.0.1", actor=ALICE)


def test_a_model_sig_that_is_no_bundle_is_an_ordinary_file(
    ws: Workspace, make_model: MakeModel
) -> None:
    folder = make_model("m", seed=9)
    (folder / "model.sig").write_text("not json\n")
    result = Registry(ws).push(folder, name="chat", version="1.0.0", actor=ALICE)
    assert "model.sig" in {f.path for f in result.manifest.files}
    assert Governance(ws).verify_signatures("chat@1.0.0") == []


def test_verify_ref_rechecks_the_recorded_signature(
    cli: Cli, make_model: MakeModel, tmp_path: Path, pki: dict[str, Path]
) -> None:
    folder = make_model("m", seed=10)
    _ms_sign_with_cert(folder, pki)
    run(cli, "key", "trust", pki["ca"], "--name", "corp-ca")
    run(cli, "push", folder, "--name", "chat", "--version", "1.0.0")
    out = run(cli, "verify", "chat@1.0.0").output
    assert "signature valid: corp-ca" in out
    run(cli, "key", "revoke", "corp-ca", "--reason", "compromised")
    r = run(cli, "verify", "chat@1.0.0", ok=False)
    assert r.exit_code == 1 and "signature invalid" in r.output


def test_trust_accepts_ec_keys_and_ca_certificates_only(
    ws: Workspace, tmp_path: Path, pki: dict[str, Path]
) -> None:
    gov = Governance(ws)
    with pytest.raises(InvalidInput, match="not a CA certificate"):
        gov.trust_key(pki["cert"].read_text(), name="leaf", actor=ALICE)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    row = gov.trust_key(pem.decode(), name="ec", actor=ALICE)
    assert row.key_id.startswith("sha256:") and len(row.key_id) == 71
    with pytest.raises(InvalidInput, match="not a PEM public key or certificate"):
        gov.trust_key("hello", name="junk", actor=ALICE)


def test_the_statement_matches_model_signing_for_the_same_folder(
    make_model: MakeModel, tmp_path: Path
) -> None:
    """Airlock's pure encoder lists the same resources and root digest as model-signing."""
    import hashlib

    key = _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "ec.pem")
    folder = make_model("m", seed=11)
    _ms_sign_with_key(folder, key)
    theirs = openssf_signing.parse_bundle((folder / "model.sig").read_text()).statement()
    files = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    ours = openssf_signing.statement_for_files("m", files)
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]
    assert openssf_signing.statement_problems(theirs, files) == []
