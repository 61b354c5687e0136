"""OpenSSF model-signing signatures: EC keys and X.509 certificates, made and checked here.

``airlock sign REF --format openssf`` writes the ``model.sig`` that
``model_signing`` verifies on the pulled folder; a pushed folder holding a
``model.sig`` made by ``model_signing`` is verified against the trusted keys and
CA certificates before the release is recorded, and the signature is stored
with the release like Airlock's own (see :mod:`airlock.core.openssf_signing`
for the format). Trusted material:

- an EC public key (P-256, P-384, P-521), id ``sha256:`` + the hex SHA-256 of
  its PEM: the key hint model-signing writes;
- a CA certificate, id ``sha256:`` + its fingerprint; a certificate-based
  signature counts when its signing certificate chains (through the
  intermediates in the bundle) to a trusted, unrevoked CA, every certificate
  valid when the signing certificate was issued (as model-signing checks), and
  the signing certificate allows digital signatures or code signing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from airlock.catalog import governance as sql
from airlock.core import openssf_signing as openssf
from airlock.core.digest import hex_of
from airlock.core.manifest import Manifest
from airlock.core.records import Release, TrustedKey
from airlock.core.roles import Action
from airlock.errors import InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor

if TYPE_CHECKING:
    from airlock.services.signatures import AddedSignature, Signatures, SignResult
    from airlock.services.workspace import Workspace

CERT_PEM = "-----BEGIN CERTIFICATE-----"
_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
_MAX_CHAIN = 8


@dataclass(frozen=True, slots=True)
class TrustedMaterial:
    """What ``airlock key trust`` stores: an id, normalised PEM, and a kind for display."""

    key_id: str
    pem: str
    kind: str  # ed25519 | ec | ca


@dataclass(frozen=True, slots=True)
class OpenSSFCheck:
    key_id: str  # the EC key's id, or the signing certificate's fingerprint
    key_name: str | None  # the trusted key's (or CA's) name
    valid: bool
    why: str


def _spki_pem(key: ec.EllipticCurvePublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ec_key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """model-signing's key hint: the hex SHA-256 of the public key PEM."""
    return hashlib.sha256(_spki_pem(key)).hexdigest()


def cert_id(cert: x509.Certificate) -> str:
    return f"sha256:{cert.fingerprint(hashes.SHA256()).hex()}"


def _check_curve(key: ec.EllipticCurvePublicKey, what: str) -> None:
    if key.curve.name not in _CURVES:
        raise InvalidInput(
            f"{what} uses the curve {key.curve.name}; OpenSSF model signing takes P-256, P-384 "
            "or P-521"
        )


def _hash_for(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    size = key.curve.key_size
    return hashes.SHA256() if size == 256 else hashes.SHA384() if size == 384 else hashes.SHA512()


def trusted_material(pem: str) -> TrustedMaterial:
    """Parse a PEM given to ``airlock key trust``: an ed25519 or EC public key, or a CA cert."""
    from airlock.services.signatures import key_id_of  # ed25519 ids as before

    data = pem.encode("ascii", errors="replace")
    if CERT_PEM in pem:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise InvalidInput(f"not a PEM certificate ({exc})") from exc
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            raise InvalidInput(
                "the certificate is not a CA certificate (basicConstraints CA:TRUE)",
                hint="trust the CA that issues signing certificates, or the signer's EC public key",
            )
        text = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return TrustedMaterial(cert_id(cert), text, "ca")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"not a PEM public key or certificate ({exc})") from exc
    if isinstance(key, Ed25519PublicKey):
        return TrustedMaterial(key_id_of(key), _spki_pem(key).decode("ascii"), "ed25519")
    if isinstance(key, ec.EllipticCurvePublicKey):
        _check_curve(key, "the key")
        return TrustedMaterial(f"sha256:{ec_key_hint(key)}", _spki_pem(key).decode("ascii"), "ec")
    raise InvalidInput(
        f"unsupported public key type {type(key).__name__}",
        hint="trust an ed25519 key, an EC key (P-256/P-384/P-521) or a CA certificate",
    )


def kind_of(row: TrustedKey) -> str:
    if CERT_PEM in row.public_key:
        return "ca"
    key = serialization.load_pem_public_key(row.public_key.encode("ascii"))
    return "ec" if isinstance(key, ec.EllipticCurvePublicKey) else "ed25519"


# -- signing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenSSFSigner:
    """An EC private key, and for certificate-based signing its certificate and chain."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def key_id(self) -> str:
        if self.certificate is not None:
            return cert_id(self.certificate)
        return f"sha256:{ec_key_hint(self.key.public_key())}"

    def sign_files(self, model_name: str, files: Mapping[str, str]) -> str:
        """The ``model.sig`` bundle (JSON text) for ``files`` (path -> sha256 hex)."""
        statement = openssf.statement_for_files(model_name, files)
        payload = openssf.statement_payload(statement)
        public = self.key.public_key()
        signature = self.key.sign(
            openssf.pae(openssf.PAYLOAD_TYPE, payload), ec.ECDSA(_hash_for(public))
        )
        if self.certificate is not None:
            ders = [
                c.public_bytes(serialization.Encoding.DER) for c in (self.certificate, *self.chain)
            ]
            bundle = openssf.make_bundle(payload, signature, certificates=ders)
        else:
            bundle = openssf.make_bundle(payload, signature, key_hint=ec_key_hint(public))
        return json.dumps(bundle, indent=2)

    def sign_release(self, manifest: Manifest) -> str:
        return self.sign_files(manifest.name, {f.path: hex_of(f.digest) for f in manifest.files})


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no {what} file at {path}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc


def load_signer(
    key_path: Path, cert_path: Path | None = None, chain_paths: Sequence[Path] = ()
) -> OpenSSFSigner:
    """An EC private key (PEM, unencrypted) and optionally its certificate and chain (PEM)."""
    try:
        key = serialization.load_pem_private_key(_read(key_path, "key"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{key_path} is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(
            f"{key_path} is not an elliptic-curve key",
            hint="OpenSSF model signing takes EC keys (P-256, P-384); "
            "`--format airlock` signs with ed25519",
        )
    _check_curve(key.public_key(), str(key_path))
    if cert_path is None:
        if chain_paths:
            raise InvalidInput("--chain goes with --cert")
        return OpenSSFSigner(key)
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path, "certificate"))
        chain = tuple(
            c for p in chain_paths for c in x509.load_pem_x509_certificates(_read(p, "chain"))
        )
    except ValueError as exc:
        raise InvalidInput(f"not a PEM certificate ({exc})") from exc
    if cert.public_key() != key.public_key():
        raise InvalidInput(
            f"the certificate {cert_path} is not for the key {key_path}",
            hint="pass the signing certificate issued for this private key",
        )
    return OpenSSFSigner(key, cert, chain)


# -- verification ----------------------------------------------------------------------------


def check(
    bundle: str,
    *,
    trusted: Mapping[str, TrustedKey],
    files: Mapping[str, str],
) -> OpenSSFCheck:
    """Verify a model-signing bundle against the trusted keys/CAs and ``files`` (path -> hex).

    ``files`` may include the signature file and git's files: the paths the
    statement says it ignores are left out, as model-signing's verifier does.
    """
    try:
        parsed = openssf.parse_bundle(bundle)
    except InvalidInput as exc:
        return OpenSSFCheck("?", None, False, exc.message)
    if parsed.payload_type != openssf.PAYLOAD_TYPE:
        return OpenSSFCheck("?", None, False, f"unexpected payload type {parsed.payload_type!r}")
    if parsed.certificates:
        outcome = _certificate_key(parsed.certificates, trusted)
        if isinstance(outcome, OpenSSFCheck):
            return outcome
        public, kid, name, who = outcome
    else:
        kid = f"sha256:{parsed.key_hint}"
        row = trusted.get(kid)
        if row is None:
            return OpenSSFCheck(
                kid, None, False, f"key {kid[:19]} is not trusted (`airlock key trust`)"
            )
        name = row.name
        if row.revoked_at is not None:
            return OpenSSFCheck(
                kid, name, False, f"key {name} was revoked on {row.revoked_at:%Y-%m-%d}"
            )
        loaded = serialization.load_pem_public_key(row.public_key.encode("ascii"))
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            return OpenSSFCheck(kid, name, False, f"key {name} is not an EC key")
        public, who = loaded, f"key {name}"
    try:
        public.verify(parsed.signature, parsed.signed_bytes, ec.ECDSA(_hash_for(public)))
    except InvalidSignature:
        return OpenSSFCheck(kid, name, False, f"the signature does not verify with {who}")
    try:
        statement = parsed.statement()
    except InvalidInput as exc:
        return OpenSSFCheck(kid, name, False, exc.message)
    problems = openssf.statement_problems(statement, files)
    if problems:
        more = " ..." if len(problems) > 3 else ""
        return OpenSSFCheck(kid, name, False, "; ".join(problems[:3]) + more)
    return OpenSSFCheck(kid, name, True, f"valid OpenSSF model signature, {who}")


def _certificate_key(
    ders: tuple[bytes, ...], trusted: Mapping[str, TrustedKey]
) -> OpenSSFCheck | tuple[ec.EllipticCurvePublicKey, str, str, str]:
    try:
        certs = [x509.load_der_x509_certificate(d) for d in ders]
    except ValueError as exc:
        return OpenSSFCheck("?", None, False, f"a certificate in the bundle is malformed ({exc})")
    leaf, intermediates = certs[0], certs[1:]
    kid = cert_id(leaf)
    subject = leaf.subject.rfc4514_string()
    if not _may_sign(leaf):
        return OpenSSFCheck(kid, None, False, f"certificate {subject} may not sign (key usage)")
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return OpenSSFCheck(kid, None, False, f"certificate {subject} does not hold an EC key")
    roots = []
    for row in trusted.values():
        if CERT_PEM in row.public_key:
            roots.append((row, x509.load_pem_x509_certificate(row.public_key.encode("ascii"))))
    when = leaf.not_valid_before_utc
    current = leaf
    for _ in range(_MAX_CHAIN):
        if not _valid_at(current, when):
            return OpenSSFCheck(
                kid, None, False, f"certificate {current.subject.rfc4514_string()} was not valid"
            )
        for row, root in roots:
            if _issued_by(current, root):
                if row.revoked_at is not None:
                    return OpenSSFCheck(
                        kid,
                        row.name,
                        False,
                        f"CA {row.name} was revoked on {row.revoked_at:%Y-%m-%d}",
                    )
                if not _valid_at(root, when):
                    return OpenSSFCheck(kid, row.name, False, f"CA {row.name} was not valid then")
                return public, kid, row.name, f"certificate {subject} under CA {row.name}"
        issuer = next((c for c in intermediates if _is_ca(c) and _issued_by(current, c)), None)
        if issuer is None or issuer is current:
            break
        current = issuer
    return OpenSSFCheck(
        kid,
        None,
        False,
        f"certificate {subject} does not chain to a trusted CA (`airlock key trust CA.pem`)",
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject or not _is_ca(issuer):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _valid_at(cert: x509.Certificate, when: datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _may_sign(cert: x509.Certificate) -> bool:
    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return ExtendedKeyUsageOID.CODE_SIGNING in usages
    except x509.ExtensionNotFound:
        return False


def release_files(manifest: Manifest, bundle: str) -> dict[str, str]:
    """A release's files as a verifier of ``bundle`` sees them: the file that *is* the bundle
    (the ``model.sig`` pushed with the folder) is no file it signed."""
    own = hashlib.sha256(bundle.encode("utf-8")).hexdigest()
    return {f.path: hex_of(f.digest) for f in manifest.files if hex_of(f.digest) != own}


# -- by release ------------------------------------------------------------------------------


def sign_release(
    signatures: Signatures, release: Release, signer: OpenSSFSigner, *, actor: Actor
) -> tuple[SignResult, OpenSSFCheck]:
    """Sign ``release``'s files in the OpenSSF format, store the bundle, and check it."""
    authorize(signatures.db, actor, Action.RELEASE_SIGN, release.ref)
    manifest = release.manifest()
    bundle = signer.sign_release(manifest)
    with signatures.db.read() as conn:
        trusted = {k.key_id: k for k in sql.keys(conn)}
    checked = check(bundle, trusted=trusted, files=release_files(manifest, bundle))
    result = signatures.record(
        release,
        signer.key_id,
        bundle,
        actor=actor,
        fmt="openssf",
        trust=(checked.key_name, checked.valid),
    )
    return result, checked


def add_bundle(
    signatures: Signatures,
    release: Release,
    bundle: str,
    *,
    trusted: Mapping[str, TrustedKey],
    actor: Actor,
) -> AddedSignature:
    """Store a ``model.sig`` made elsewhere for ``release`` (see ``Signatures.add``)."""
    from airlock.services.signatures import AddedSignature

    parsed = openssf.parse_bundle(bundle)  # InvalidInput: not a bundle
    files = release_files(release.manifest(), bundle)
    problems = openssf.statement_problems(parsed.statement(), files)
    if problems:
        raise InvalidInput(
            f"the signature is not over the files of {release.ref}: " + "; ".join(problems[:3]),
            hint=f"sign the release as it is stored: `airlock sign {release.ref} --format openssf`",
        )
    checked = check(bundle, trusted=trusted, files=files)
    if checked.key_id == "?":
        raise InvalidInput(checked.why)
    key = trusted.get(checked.key_id)
    if not checked.valid and key is not None and key.revoked_at is None:
        raise InvalidInput(checked.why, hint="sign again with the private key of that key")
    result = signatures.record(
        release,
        checked.key_id,
        bundle,
        actor=actor,
        fmt="openssf",
        trust=(checked.key_name, checked.valid),
    )
    return AddedSignature(result, checked.valid)


def pushed_signature(
    workspace: Workspace, entries: Sequence[tuple[str, str]], read: bytes | None
) -> str | None:
    """Check the ``model.sig`` of a folder being pushed; the bundle text when it verifies.

    ``entries`` are the pushed files (path, sha256 hex), ``read`` the bytes of its
    ``model.sig`` (None: there is none). A ``model.sig`` that is not an OpenSSF
    bundle is an ordinary file. One that is must verify with a trusted key or CA
    and match every file, or the push is refused naming what differs.
    """
    if read is None:
        return None
    try:
        bundle = read.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not openssf.is_openssf_bundle(bundle):
        return None
    own = hashlib.sha256(read).hexdigest()
    files = {p: d for p, d in entries if not (p == openssf.SIGNATURE_FILE and d == own)}
    with workspace.db.read() as conn:
        trusted = {k.key_id: k for k in sql.keys(conn)}
    checked = check(bundle, trusted=trusted, files=files)
    if not checked.valid:
        raise InvalidInput(
            f"{openssf.SIGNATURE_FILE} does not verify: {checked.why}",
            hint="trust the signer's key or CA (`airlock key trust`), re-sign the folder, "
            f"or remove {openssf.SIGNATURE_FILE} to push it unsigned",
        )
    return bundle


def record_pushed(
    signatures: Signatures, release: Release, bundle: str, *, actor: Actor
) -> SignResult:
    """Store a verified ``model.sig`` with the release it came with."""
    with signatures.db.read() as conn:
        trusted = {k.key_id: k for k in sql.keys(conn)}
    checked = check(bundle, trusted=trusted, files=release_files(release.manifest(), bundle))
    return signatures.record(
        release,
        checked.key_id,
        bundle,
        actor=actor,
        fmt="openssf",
        trust=(checked.key_name, checked.valid),
    )
