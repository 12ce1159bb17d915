"""No secret ever reaches an output file or a log, even at debug level with botocore's output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import yaml

from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.logs import REDACTED, RedactingFilter, redact
from tests.conftest import seed

ORG = OrgSpec(
    management_users=(UserSpec("admin", (ACTIVE, ACTIVE)),),
    accounts=(
        AccountSpec("a", "Root/Prod", (UserSpec("pair", (ACTIVE, ACTIVE)),)),
        AccountSpec("b", "Root/Dev", (UserSpec("solo", (ACTIVE,)),)),
    ),
)


def test_debug_scan_leaks_no_key_secret_session_token_or_scanning_secret(aws, tmp_path):
    seeded = seed(aws, ORG)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"scan": {"strategy": "credential-report"}}))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "orgscan", "scan", "-c", str(cfg), "-o", str(out), "--verbose"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ.copy(),
    )
    assert done.returncode == 1, done.stderr
    # orgscan's own debug output is there; the AWS libraries' (signed headers, bodies) is not.
    assert "DEBUG orgscan" in done.stderr
    assert "DEBUG botocore" not in done.stderr and "AssumeRoleResponse" not in done.stderr
    secrets = [
        *seeded.secrets,
        *aws.faults.issued_secrets,
        os.environ["AWS_SECRET_ACCESS_KEY"],
    ]
    assert len(aws.faults.issued_secrets) >= 4  # two accounts: a secret and a token each
    texts = {p.name: p.read_text() for p in out.iterdir()}
    texts["stdout"], texts["stderr"] = done.stdout, done.stderr
    # ...and none of it holds a secret.
    leaks = [(name, s[:6]) for s in secrets for name, text in texts.items() if s in text]
    assert leaks == []


def test_redact_covers_every_shape_botocore_logs():
    token = "FwoGZXIvYXdzEJr//////////wEaDHk5bWFnaWN0b2tlbiKsAQ=="
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    samples = [
        f"<Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
        f"<SessionToken>{token}</SessionToken></Credentials>",
        f"{{'AccessKeyId': 'ASIA1', 'SecretAccessKey': '{secret}', 'SessionToken': '{token}'}}",
        f"headers={{'X-Amz-Security-Token': b'{token}', 'Authorization': b'AWS4-HMAC-SHA256 "
        f"Credential=ASIA1/20261122/us-east-1/iam/aws4_request, Signature={'ab' * 32}'}}",
        f'{{"aws_secret_access_key": "{secret}", "aws_session_token": "{token}"}}',
        f"aws_secret_access_key={secret}&aws_session_token={token}",
        f"CanonicalRequest:\nPOST\n/\n\nhost:iam.amazonaws.com\nx-amz-security-token:{token}\n",
        f"{{'RoleArn': 'arn:aws:iam::1:role/ci', 'WebIdentityToken': '{token}'}}",
        f"headers={{'x-amz-sso_bearer_token': b'{token}', 'Authorization': 'Bearer {secret}'}}",
    ]
    for sample in samples:
        cleaned = redact(sample)
        assert secret not in cleaned and token not in cleaned and "ab" * 32 not in cleaned
        assert REDACTED in cleaned
    assert "ASIA1" in redact(samples[0])  # key ids are not secret and stay for debugging


def test_filter_redacts_arguments_and_tracebacks():
    record = logging.LogRecord(
        "botocore",
        logging.DEBUG,
        __file__,
        1,
        "Response: %s",
        ({"SessionToken": "tok-123456"},),
        None,
    )
    try:
        raise ValueError("SecretAccessKey=abcdef123456")
    except ValueError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert "tok-123456" not in record.getMessage()
    assert "abcdef123456" not in record.exc_text
