"""The signed attestation (DSSE + in-toto), KMS signing, and the write-once copy in S3."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from orgscan.attestation import LocalSigner, pae, public_pem
from orgscan.aws.clients import ClientFactory
from orgscan.cli import ExitCode, app
from orgscan.config import ScanConfig
from orgscan.demo.faults import Fault
from orgscan.demo.server import MotoServer
from orgscan.reports.writer import write_reports
from tests.report_fixtures import scan_result

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = [
    "findings.csv",
    "findings.json",
    "findings.ocsf.jsonl",
    "manifest.json",
    "orgscan.sarif",
    "report.html",
]


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "pub.pem"
    public.write_bytes(public_pem(key.public_key()))
    return _pem(key, tmp_path / "key.pem"), public


def _signed(tmp_path: Path, key: str, *extra: str) -> tuple[Path, int, str]:
    """findings.json rebuilt with `orgscan report --sign KEY`: the package, exit code, output."""
    source = tmp_path / "source"
    write_reports(scan_result(complete=True), source)
    out = tmp_path / "signed"
    run = CliRunner().invoke(
        app,
        ["report", str(source / "findings.json"), "-o", str(out), "--sign", key, *extra],
    )
    return out, run.exit_code, run.output


def _verify(target: Path | str, key: Path | str | None) -> tuple[int, str]:
    args = ["verify", str(target)] + (["--key", str(key)] if key else [])
    run = CliRunner().invoke(app, args)
    return run.exit_code, run.output


def test_pae_is_dsse_v1() -> None:
    # The example of DSSE's protocol.md.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_local_key_signs_and_verify_checks_everything(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    out, code, output = _signed(tmp_path, str(keys[0]), "--fail-on", "never")
    assert code == ExitCode.CLEAN, output
    line = (out / "attestation.intoto.jsonl").read_bytes().splitlines()
    envelope = json.loads(line[0])
    assert len(line) == 1 and envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert [s["name"] for s in statement["subject"]] == PACKAGE
    findings = json.loads((out / "findings.json").read_bytes())
    predicate = statement["predicate"]
    assert predicate["runId"] == findings["run"]["id"]
    assert predicate["organizationId"] == findings["run"]["organization_id"]
    assert predicate["coverage"]["scanned"] == findings["summary"]["accounts_scanned"]
    assert predicate["complete"] is True
    # manifest.json cannot list the attestation that signs it, and verify without a key passes.
    assert "attestation" not in (out / "manifest.json").read_text()
    code, output = _verify(out, None)
    assert code == 0 and "signed:  not checked" in output, output
    code, output = _verify(out, keys[1])
    assert code == 0, output
    assert f"run {findings['run']['id']}" in output and "signed by key sha256:" in output


@pytest.mark.parametrize("name", [*PACKAGE, "attestation.intoto.jsonl"])
def test_one_changed_byte_fails_naming_the_file(
    tmp_path: Path, keys: tuple[Path, Path], name: str
) -> None:
    out, _, _ = _signed(tmp_path, str(keys[0]))
    path = out / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, output = _verify(out, keys[1])
    assert code == 1
    assert re.search(rf"MISMATCH {re.escape(name)}: ", output), output


def test_findings_edited_and_rerendered_fails(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """The attack the signature exists for: edit the evidence, re-render a consistent package,
    keep the old attestation."""
    out, _, _ = _signed(tmp_path, str(keys[0]))
    data = json.loads((out / "findings.json").read_text())
    data["findings"] = data["findings"][1:]
    data["summary"]["findings"] -= 1
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    forged = tmp_path / "forged"
    CliRunner().invoke(app, ["report", str(edited), "-o", str(forged)])
    shutil.copy(out / "attestation.intoto.jsonl", forged)
    assert _verify(forged, None)[0] == 0  # consistent: the manifest alone cannot tell
    code, output = _verify(forged, keys[1])
    assert code == 1
    assert "MISMATCH findings.json: SHA-256 does not match the signed attestation" in output
    assert "predicate.findingsSha256" in output


def _reenvelope(out: Path, change: dict[str, object], signer: LocalSigner | None) -> None:
    """The attestation with its predicate changed: re-signed by `signer`, or the old signature."""
    path = out / "attestation.intoto.jsonl"
    envelope = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"].update(change)
    payload = json.dumps(statement).encode()
    envelope["payload"] = base64.b64encode(payload).decode()
    if signer is not None:
        message = pae(envelope["payloadType"], payload)
        signature = signer.key.sign(message, ec.ECDSA(hashes.SHA256()))
        envelope["signatures"] = [{"keyid": "x", "sig": base64.b64encode(signature).decode()}]
    path.write_text(json.dumps(envelope) + "\n")


def test_changed_statement_fails(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    out, _, _ = _signed(tmp_path, str(keys[0]))
    _reenvelope(out, {"complete": False}, None)
    code, output = _verify(out, keys[1])
    assert code == 1 and "no signature by this key over the statement" in output


def test_statement_that_disagrees_with_findings_fails_even_signed(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    out, _, _ = _signed(tmp_path, str(keys[0]))
    _reenvelope(
        out, {"runId": "another-run", "coverage": {"scanned": 99}}, LocalSigner.load(keys[0])
    )
    code, output = _verify(out, keys[1])
    assert code == 1
    assert 'predicate.runId is "another-run"' in output and "predicate.coverage" in output


def test_another_key_fails(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    out, _, _ = _signed(tmp_path, str(keys[0]))
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    assert _verify(out, other)[0] == 1


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSAPrivateKey"),
        (ec.generate_private_key(ec.SECP384R1()), "EC secp384r1"),
    ],
)
def test_other_key_types_are_refused_before_anything(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, says: str
) -> None:
    out, code, output = _signed(tmp_path, str(_pem(key, tmp_path / "k.pem")))
    assert code == ExitCode.USAGE and "expected an EC P-256" in output and says in output
    assert not out.exists()


@pytest.mark.skipif(not all(map(shutil.which, ["openssl", "jq"])), reason="needs openssl, jq")
def test_readme_openssl_commands_verify_without_orgscan(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    block = (ROOT / "README.md").read_text().split("<!-- openssl-verify -->\n```sh\n")[1]
    script = block.split("```")[0]
    out, _, _ = _signed(tmp_path, str(keys[0]))
    run = lambda: subprocess.run(  # noqa: E731
        ["bash", "-e", "-c", script],
        cwd=out,
        env={**os.environ, "PUB": str(keys[1])},
        capture_output=True,
        text=True,
        check=False,
    )
    done = run()
    assert done.returncode == 0, done.stderr
    assert "Verified OK" in done.stdout
    assert all(f"{name}: OK" in done.stdout for name in PACKAGE)
    assert "/tmp" not in script  # a private temporary directory, not fixed shared paths
    # A file added beside the signed ones: sha256sum -c cannot notice it, the diff does.
    (out / "unsigned.txt").write_text("added later\n")
    done = run()
    assert done.returncode != 0 and "> unsigned.txt" in done.stdout, done.stdout
    (out / "unsigned.txt").unlink()
    (out / "findings.csv").write_bytes((out / "findings.csv").read_bytes() + b"x")
    done = run()
    assert done.returncode != 0 and "findings.csv: FAILED" in done.stdout


def test_demo_sign_then_verify(tmp_path: Path) -> None:
    # A subprocess: the demo starts its own moto server and rewrites the AWS environment.
    # `--output .`: the key goes beside the directory, named after it (Path(".") has no name).
    out = tmp_path / "demo-report"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "orgscan", "demo", "--output", ".", "--quiet", "--sign"],
        cwd=out,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == ExitCode.INCOMPLETE, done.stderr
    private = tmp_path / "demo-report-signing-key.pem"
    public = tmp_path / "demo-report-signing-key.pub.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.iterdir() if b"PRIVATE" in p.read_bytes()]
    code, output = _verify(out, public)
    assert code == 0, output
    html = out / "report.html"
    html.write_bytes(html.read_bytes().replace(b"<html", b"<HTML", 1))
    code, output = _verify(out, public)
    assert code == 1 and "MISMATCH report.html: SHA-256 does not match" in output


# --- KMS and S3, against moto's server -------------------------------------------------------


@pytest.fixture
def kms_key(aws: MotoServer) -> str:
    """An ECC_NIST_P256 signing key with an alias; KMS's DIGEST signing as AWS does it."""
    kms = boto3.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    kms.create_alias(AliasName="alias/orgscan-evidence", TargetKeyId=key["KeyId"])
    aws.inject([Fault(action="Sign", kms_digest=True)])
    return str(key["Arn"])


def test_kms_signs_and_verifies_with_a_standard_verifier(
    tmp_path: Path, kms_key: str, aws: MotoServer
) -> None:
    out, code, output = _signed(tmp_path, "awskms:///alias/orgscan-evidence")
    assert code in (ExitCode.CLEAN, ExitCode.FINDINGS), output
    envelope = json.loads((out / "attestation.intoto.jsonl").read_bytes())
    assert envelope["signatures"][0]["keyid"] == kms_key
    code, output = _verify(out, "awskms:///alias/orgscan-evidence")
    assert code == 0 and f"signed by key {kms_key}" in output, output
    # The KMS signature verifies with the public key alone, outside KMS (DER ECDSA over PAE).
    der = boto3.client("kms").get_public_key(KeyId=kms_key)["PublicKey"]
    public = serialization.load_der_public_key(der)
    pem = tmp_path / "kms.pub.pem"
    pem.write_bytes(public_pem(public))  # type: ignore[arg-type]
    assert _verify(out, pem)[0] == 0


def test_kms_key_of_the_wrong_kind_is_refused_before_the_scan(
    tmp_path: Path, aws: MotoServer
) -> None:
    key = boto3.client("kms").create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    out, code, output = _signed(tmp_path, f"awskms:///{key['Arn']}")
    assert code == ExitCode.USAGE and "expected an ECC_NIST_P256 SIGN_VERIFY key" in output
    assert not out.exists()
    _, code, output = _signed(tmp_path, "awskms://alias/x")
    assert code == ExitCode.USAGE and "--sign: expected awskms:///" in output


BUCKET = "orgscan-evidence"


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return BUCKET


def test_upload_with_retention_is_locked_and_verifies_in_place(
    tmp_path: Path, keys: tuple[Path, Path], bucket: str
) -> None:
    _, code, output = _signed(
        tmp_path,
        str(keys[0]),
        "--upload",
        f"s3://{bucket}/2026-Q4/",
        "--retain-days",
        "30",
        "--retain-mode",
        "GOVERNANCE",
    )
    assert "upload:   s3://orgscan-evidence/2026-Q4/: every file written and read back" in output, (
        output
    )
    assert code in (ExitCode.CLEAN, ExitCode.FINDINGS), output
    s3 = boto3.client("s3")
    uploaded = s3.list_objects_v2(Bucket=bucket, Prefix="2026-Q4/")["Contents"]
    assert sorted(o["Key"] for o in uploaded) == sorted(
        f"2026-Q4/{n}" for n in [*PACKAGE, "attestation.intoto.jsonl"]
    )
    head = s3.head_object(Bucket=bucket, Key="2026-Q4/findings.json", ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ChecksumSHA256"]
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key="2026-Q4/findings.json", VersionId=head["VersionId"])
    code, output = _verify(f"s3://{bucket}/2026-Q4/", keys[1])
    assert code == 0 and "fetched: 7 object(s)" in output, output
    # The same run signed again: only the attestation differs, and the one there is kept.
    _, code, output = _signed(
        tmp_path / "again", str(keys[0]), "--upload", f"s3://{bucket}/2026-Q4/"
    )
    assert code == ExitCode.INCOMPLETE, output
    assert "attestation.intoto.jsonl: the key already holds other content" in output
    # One prefix per run: another run's package is refused before anything is written.
    other = tmp_path / "other"
    write_reports(scan_result(complete=True, run_id="20250314T093000Z-0therrun"), other)
    run = CliRunner().invoke(app, ["publish", str(other), f"s3://{bucket}/2026-Q4/"])
    assert run.exit_code == ExitCode.USAGE and "already exists" in run.output


def test_partial_upload_exits_3_and_leaves_no_manifest(
    tmp_path: Path, keys: tuple[Path, Path], bucket: str, aws: MotoServer
) -> None:
    aws.inject([Fault(action="PutObject", object_key="/orgscan.sarif", error="AccessDenied")])
    _, code, output = _signed(tmp_path, str(keys[0]), "--upload", f"s3://{bucket}/run/")
    assert code == ExitCode.INCOMPLETE, output
    assert "upload: orgscan.sarif: AccessDenied" in output
    assert "manifest.json: not uploaded" in output
    keys_there = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert (
        "run/manifest.json" not in keys_there and "run/attestation.intoto.jsonl" not in keys_there
    )
    assert "run/findings.json" in keys_there


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--retain-days", "30"], "--retain-mode: expected COMPLIANCE or GOVERNANCE"),
        (["--retain-days", "0", "--retain-mode", "COMPLIANCE"], "--retain-days"),
        (["--retain-until", "2001-01-01", "--retain-mode", "COMPLIANCE"], "not in the future"),
        (["--retain-until", "soon", "--retain-mode", "COMPLIANCE"], "--retain-until: expected"),
    ],
)
def test_bad_retention_is_a_usage_error(
    tmp_path: Path, keys: tuple[Path, Path], options: list[str], says: str, aws: MotoServer
) -> None:
    out, code, output = _signed(tmp_path, str(keys[0]), "--upload", "s3://b-u-c/p/", *options)
    assert code == ExitCode.USAGE and says in output, output
    assert not out.exists()


RETAIN = ["--retain-days", "1", "--retain-mode", "GOVERNANCE"]


def test_retention_on_a_bucket_without_object_lock_is_refused(
    tmp_path: Path, keys: tuple[Path, Path], aws: MotoServer
) -> None:
    boto3.client("s3").create_bucket(Bucket="plain-bucket")
    run = CliRunner().invoke(
        app,
        ["publish", str(tmp_path), "s3://plain-bucket/p/", *RETAIN],
    )
    assert run.exit_code == ExitCode.USAGE  # not a package either; both are named before upload
    write_reports(scan_result(complete=True), tmp_path / "pkg")
    run = CliRunner().invoke(
        app,
        ["publish", str(tmp_path / "pkg"), "s3://plain-bucket/p/", *RETAIN],
    )
    assert run.exit_code == ExitCode.USAGE and "has no Object Lock" in run.output
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket="plain-bucket")


# --- Review of issue 12: what AWS authorises, re-publishing, one version per key -------------

PERMISSIONS = json.loads((ROOT / "deploy" / "permissions.json").read_text())
WRITER = frozenset(
    a for s in PERMISSIONS["evidence_writer"]["statements"].values() for a in s["actions"]
)


def test_the_evidence_writer_role_can_upload_and_verify_a_locked_package(
    tmp_path: Path, keys: tuple[Path, Path], bucket: str, aws: MotoServer
) -> None:
    """With exactly deploy/permissions.json's evidence_writer grants, as AWS authorises them:
    the read-back of a version needs s3:GetObjectVersion, and its retention is only answered
    with s3:GetObjectRetention."""
    aws.inject([Fault(s3_grants=WRITER)])
    _, code, output = _signed(
        tmp_path, str(keys[0]), "--upload", f"s3://{bucket}/q/", *RETAIN, "--fail-on", "never"
    )
    assert code == ExitCode.CLEAN, output
    assert "every file written and read back" in output
    code, output = _verify(f"s3://{bucket}/q/", keys[1])
    assert code == 0, output
    # The layer really refuses what is not granted.
    aws.inject([Fault(s3_grants=WRITER - {"s3:GetObjectRetention"})])
    _, code, output = _signed(
        tmp_path / "r", str(keys[0]), "--upload", f"s3://{bucket}/r/", *RETAIN
    )
    assert code == ExitCode.INCOMPLETE and "retention read back is None" in output, output


def _objects(bucket: str, prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in listed.get("Contents", []))


@pytest.mark.parametrize("last", ["attestation.intoto.jsonl", "manifest.json"])
def test_a_failed_last_object_leaves_no_manifest_and_a_republish_completes(
    tmp_path: Path, keys: tuple[Path, Path], bucket: str, aws: MotoServer, last: str
) -> None:
    aws.inject([Fault(action="PutObject", object_key=f"/{last}", error="AccessDenied")])
    out, code, output = _signed(tmp_path, str(keys[0]), "--upload", f"s3://{bucket}/run/", *RETAIN)
    assert code == ExitCode.INCOMPLETE and f"upload: {last}: AccessDenied" in output, output
    # The manifest is the last object: without it, nothing there looks like a package.
    assert "manifest.json" not in _objects(bucket, "run/")
    code, output = _verify(f"s3://{bucket}/run/", None)
    assert code != 0, output
    aws.inject([])
    run = CliRunner().invoke(app, ["publish", str(out), f"s3://{bucket}/run/", *RETAIN])
    assert run.exit_code == 0, run.output
    assert "kept:     orgscan-evidence/run/findings.json (already there, GOVERNANCE" in run.output
    assert "uploaded: orgscan-evidence/run/manifest.json" in run.output
    assert _objects(bucket, "run/") == sorted([*PACKAGE, "attestation.intoto.jsonl"])
    code, output = _verify(f"s3://{bucket}/run/", keys[1])
    assert code == 0, output


def test_a_key_holding_other_content_is_never_replaced(
    tmp_path: Path, keys: tuple[Path, Path], bucket: str
) -> None:
    """PutObject carries IfNoneMatch="*" (moto 5.2 honours it: PreconditionFailed), so an
    upload never adds a version over another run's object, even without a manifest there."""
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="run/findings.json", Body=b"{}")
    _, code, output = _signed(tmp_path, str(keys[0]), "--upload", f"s3://{bucket}/run/")
    assert code == ExitCode.INCOMPLETE, output
    assert "findings.json: the key already holds other content" in output
    assert "manifest.json" not in _objects(bucket, "run/")
    assert len(s3.list_object_versions(Bucket=bucket, Prefix="run/findings.json")["Versions"]) == 1
    assert s3.get_object(Bucket=bucket, Key="run/findings.json")["Body"].read() == b"{}"


def test_verify_s3_fails_when_a_key_has_a_later_version(
    tmp_path: Path, keys: tuple[Path, Path], bucket: str
) -> None:
    """A holder of s3:PutObject who writes without If-None-Match (the bucket policy in
    deploy/evidence denies it; moto does not evaluate bucket policies) replaces the package with
    a forged, self-consistent one: the current versions verify, their history does not."""
    _, code, _ = _signed(tmp_path, str(keys[0]), "--upload", f"s3://{bucket}/run/", *RETAIN)
    forged = tmp_path / "forged"
    write_reports(scan_result(complete=True, run_id="20250314T093000Z-forged00"), forged)
    for path in forged.iterdir():
        boto3.client("s3").put_object(Bucket=bucket, Key=f"run/{path.name}", Body=path.read_bytes())
    code, output = _verify(f"s3://{bucket}/run/", None)
    assert code == 1, output
    assert "MISMATCH findings.json: 2 versions; evidence is written once" in output


def test_rewriting_a_signed_package_unsigned_drops_the_old_attestation(tmp_path: Path) -> None:
    """`scan --resume DIR` rewrites the package in place (prepare_output keeps the files);
    an attestation left from the first write would sign files that changed."""
    write_reports(scan_result(), tmp_path, sign=lambda contents: b"signed before\n")
    assert (tmp_path / "attestation.intoto.jsonl").exists()
    write_reports(scan_result(complete=True), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == PACKAGE


def test_a_bare_kms_key_id_signs_and_verifies(
    tmp_path: Path, kms_key: str, aws: MotoServer
) -> None:
    """cosign accepts awskms:///KEY-ID; so does KMS's KeyId parameter."""
    ref = "awskms:///" + kms_key.rsplit("/", 1)[1]
    out, code, output = _signed(tmp_path, ref, "--fail-on", "never")
    assert code == ExitCode.CLEAN, output
    code, output = _verify(out, ref)
    assert code == 0 and f"signed by key {kms_key}" in output, output


def test_the_configs_scan_section_reaches_kms_and_s3(
    tmp_path: Path, kms_key: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--sign awskms:///, --upload and verify s3:// send with the configured timeouts and
    attempts, not ScanConfig()'s defaults."""
    from orgscan.aws import kms, s3

    seen: list[tuple[str, ScanConfig]] = []
    for module in (kms, s3):

        class Spy(ClientFactory):
            def __init__(self, scan: ScanConfig, name: str = module.__name__) -> None:
                seen.append((name.rsplit(".", 1)[1], scan))
                super().__init__(scan)

        monkeypatch.setattr(module, "ClientFactory", Spy)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"scan": {"call_timeout": 17, "max_attempts": 3}}))
    ref, target = "awskms:///alias/orgscan-evidence", f"s3://{bucket}/cfg/"
    _, code, output = _signed(tmp_path, ref, "--upload", target, "--config", str(config))
    assert code in (ExitCode.CLEAN, ExitCode.FINDINGS), output
    run = CliRunner().invoke(app, ["verify", target, "--key", ref, "--config", str(config)])
    assert run.exit_code == 0, run.output
    assert {name for name, _ in seen} == {"kms", "s3"}
    assert all((s.call_timeout, s.max_attempts) == (17, 3) for _, s in seen), seen
    # Without a config, the defaults as before.
    seen.clear()
    assert _verify(target, ref)[0] == 0
    assert seen and all(s == ScanConfig() for _, s in seen)
