"""A signed attestation over the evidence package: an in-toto Statement v1 in a DSSE envelope.

The statement's subjects are every file of the package with its SHA-256 (manifest.json too, so
the signature covers the manifest and, through it, every file); its predicate says what was
scanned, by whom and when, as findings.json records it. The envelope is DSSE v1: the signature
is over the pre-authentication encoding (PAE) of the payload type and the payload, never over
the JSON as parsed. Signatures are ECDSA P-256 / SHA-256, DER-encoded, as AWS KMS and cosign
make them. Signing and verification are the `cryptography` library's (or KMS's); ours is only
the PAE. Key material is never logged or written by this module.

Specifications: DSSE v1 (github.com/secure-systems-lab/dsse, envelope.md and protocol.md),
in-toto Attestation Framework Statement v1 (github.com/in-toto/attestation, spec/v1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orgscan import evidence as codec
from orgscan.model import ScanResult, ScanStatus
from orgscan.reports import manifest
from orgscan.signing import SigningError, check_p256

# One DSSE envelope per line, as in-toto/SLSA attestation bundles are (`.intoto.jsonl`):
# cosign, slsa-verifier and in-toto tooling read this shape, and a later countersignature or a
# second attestation about the same package is one more line, not a new format.
FILENAME = manifest.ATTESTATION
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# Ours: orgscan defines this predicate (the fields of `predicate()` below).
PREDICATE_TYPE = "https://orgscan.dev/attestation/sweep/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body,
    lengths as ASCII decimal byte counts."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


class Signer(Protocol):
    """Makes a DER-encoded ECDSA P-256 signature over SHA-256(message)."""

    @property
    def keyid(self) -> str: ...

    def sign(self, message: bytes) -> Awaitable[bytes]: ...


def keyid_of(public_key: ec.EllipticCurvePublicKey) -> str:
    """A local key's id: the SHA-256 of its DER SubjectPublicKeyInfo (what `openssl pkey
    -pubin -outform DER | sha256sum` prints), so an auditor can match it to the key file."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, slots=True)
class LocalSigner:
    """A PEM EC P-256 private key on disk (for teams without KMS)."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> LocalSigner:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(f"--sign {path}: cannot read: {exc.strerror or exc}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # Never echo the parser's message: it may quote the file.
            raise SigningError(
                f"--sign {path}: not an unencrypted PEM private key (expected EC P-256, e.g. "
                "`openssl ecparam -name prime256v1 -genkey -noout`)"
            ) from None
        check_p256(key, f"--sign {path}")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(key)

    @property
    def keyid(self) -> str:
        return keyid_of(self.key.public_key())

    async def sign(self, message: bytes) -> bytes:
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))


def generate_key(private_path: Path, public_path: Path) -> LocalSigner:
    """A new P-256 key: the private half written 0600 (created so, never widened), the public
    half beside it for verifiers."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.unlink(missing_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return LocalSigner(key)


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _coverage(result: ScanResult) -> dict[str, int]:
    return {
        str(status): len(result.accounts_with(status))
        for status in (
            ScanStatus.SCANNED,
            ScanStatus.PARTIAL,
            ScanStatus.FAILED,
            ScanStatus.SKIPPED,
        )
    }


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def predicate(result: ScanResult, findings: bytes) -> dict[str, Any]:
    """What the signer states about the sweep; every field is findings.json's (`result` is
    findings.json as parsed, so completeness is derived from its accounts)."""
    run = result.run
    return {
        "organizationId": run.organization_id,
        "runId": run.id,
        "callerArn": run.caller_arn,
        "tool": {"name": "orgscan", "version": run.tool_version},
        "startedAt": _time(run.started_at),
        "finishedAt": _time(run.finished_at),
        "configDigest": run.config_digest,
        "coverage": _coverage(result),
        "findingsSha256": hashlib.sha256(findings).hexdigest(),
        "complete": run.complete,
    }


def statement(files: Mapping[str, bytes], signed_at: datetime) -> dict[str, Any]:
    """The in-toto Statement v1 over `files` (name → content; findings.json among them)."""
    findings = files[codec.FILENAME]
    result = codec.decode(json.loads(findings), codec.FILENAME)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
            for name, data in sorted(files.items())
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {**predicate(result, findings), "signedAt": _time(signed_at)},
    }


async def attest(files: Mapping[str, bytes], signer: Signer) -> bytes:
    """The attestation file for the package `files` (manifest.json included): one line."""
    payload = json.dumps(
        statement(files, datetime.now(UTC).replace(microsecond=0)),
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")
    signature = await signer.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": signer.keyid, "sig": base64.b64encode(signature).decode()}],
    }
    return (json.dumps(envelope, separators=(",", ":")) + "\n").encode("ascii")


@dataclass(slots=True)
class AttestationCheck:
    """What the attestation check found: problems fail the package; `signed` says who signed
    what and when, once the signature holds."""

    problems: list[str] = field(default_factory=list)
    signed: list[str] = field(default_factory=list)


def _envelope(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        lines = (directory / FILENAME).read_bytes().splitlines()
    except FileNotFoundError:
        return None, f"{FILENAME}: missing (the package is not signed)"
    except OSError as exc:
        return None, f"{FILENAME}: cannot read: {exc.strerror or exc}"
    if len(lines) != 1:
        return None, f"{FILENAME}: expected one DSSE envelope, found {len(lines)} line(s)"
    try:
        envelope = json.loads(lines[0])
        assert isinstance(envelope, dict)
        assert isinstance(envelope["payload"], str) and isinstance(envelope["signatures"], list)
    except (ValueError, KeyError, AssertionError):
        return None, f"{FILENAME}: not a DSSE envelope"
    return envelope, None


def _signature_holds(
    envelope: dict[str, Any], payload: bytes, key: ec.EllipticCurvePublicKey
) -> str | None:
    """The keyid of a signature by `key` over the envelope's PAE, or None."""
    message = pae(str(envelope.get("payloadType")), payload)
    for entry in envelope["signatures"]:
        try:
            key.verify(
                base64.b64decode(entry["sig"], validate=True), message, ec.ECDSA(hashes.SHA256())
            )
        except (InvalidSignature, ValueError, KeyError, TypeError):
            continue
        return str(entry.get("keyid", ""))
    return None


def _check_statement(body: Any, directory: Path) -> list[str]:
    """The statement's form, and every subject against the file it names."""
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        return [f"{FILENAME}: the payload is not an in-toto Statement v1"]
    problems = []
    if body.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"{FILENAME}: predicateType is {body.get('predicateType')!r}")
    subjects = body.get("subject")
    if not isinstance(subjects, list):
        return [*problems, f"{FILENAME}: the statement has no subjects"]
    named: set[str] = set()
    for subject in subjects:
        name = subject.get("name") if isinstance(subject, dict) else None
        digest = subject.get("digest", {}).get("sha256") if isinstance(subject, dict) else None
        if not isinstance(name, str) or not manifest._safe_name(name) or name == FILENAME:
            problems.append(f"{FILENAME}: invalid subject {subject!r}")
            continue
        named.add(name)
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing (the attestation names it)")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: SHA-256 does not match the signed attestation")
    present = {p.name for p in directory.iterdir() if p.is_file()} - {FILENAME}
    problems += [f"{n}: not in the signed attestation" for n in sorted(present - named)]
    for required in (codec.FILENAME, manifest.FILENAME):
        if required not in named:
            problems.append(f"{FILENAME}: {required} is not a subject")
    return problems


def _check_predicate(body: dict[str, Any], evidence: ScanResult, findings: bytes) -> list[str]:
    """Every field the statement asserts must be what findings.json gives."""
    stated = body.get("predicate")
    if not isinstance(stated, dict):
        return [f"{FILENAME}: the statement has no predicate"]
    expected = predicate(evidence, findings)
    problems = [
        f"{FILENAME}: predicate.{key} is {json.dumps(stated.get(key))}, findings.json gives "
        f"{json.dumps(value)}"
        for key, value in expected.items()
        if stated.get(key) != value
    ]
    extra = set(stated) - set(expected) - {"signedAt"}
    problems += [f"{FILENAME}: predicate.{key} is not a field orgscan signs" for key in extra]
    return problems


def check_attestation(
    directory: Path, key: ec.EllipticCurvePublicKey, evidence: ScanResult | None
) -> AttestationCheck:
    """The signature by `key`, every subject against its file, and the predicate against
    findings.json (`evidence`, as parsed; None when it cannot be read)."""
    check = AttestationCheck()
    envelope, problem = _envelope(directory)
    if envelope is None:
        check.problems.append(str(problem))
        return check
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except ValueError:
        check.problems.append(f"{FILENAME}: the payload is not base64")
        return check
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        check.problems.append(f"{FILENAME}: payloadType is {envelope.get('payloadType')!r}")
    keyid = _signature_holds(envelope, payload, key)
    if keyid is None:
        check.problems.append(
            f"{FILENAME}: no signature by this key over the statement (it was changed, or "
            "signed with another key)"
        )
        return check  # an unsigned statement's claims are not worth comparing
    try:
        body = json.loads(payload)
    except ValueError:
        check.problems.append(f"{FILENAME}: the signed payload is not JSON")
        return check
    check.problems += _check_statement(body, directory)
    if evidence is not None and isinstance(body, dict):
        findings = (directory / codec.FILENAME).read_bytes()
        check.problems += _check_predicate(body, evidence, findings)
    stated = body.get("predicate", {}) if isinstance(body, dict) else {}
    subjects = body.get("subject", []) if isinstance(body, dict) else []
    check.signed = [
        f"signed by key {keyid} at {stated.get('signedAt')}",
        f"statement: run {stated.get('runId')} of organization {stated.get('organizationId')} "
        f"by {stated.get('callerArn')}, {stated.get('startedAt')} to {stated.get('finishedAt')}",
        f"coverage:  {json.dumps(stated.get('coverage'))}, complete: "
        f"{json.dumps(stated.get('complete'))}; {len(subjects)} file(s) signed",
    ]
    return check
