"""What signing and verifying share with the AWS wing, with no dependency on the package:
the `awskms:///` reference prefix, the signing error, and the P-256 public-key loader (KMS
GetPublicKey returns DER; a verifier's key file is PEM). `attestation` and `aws.kms` both use
these, so neither imports the other."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KMS_PREFIX = "awskms:///"


class SigningError(Exception):
    """A key cannot be used, or signing failed; the message says which and why."""


def check_p256(key: object, source: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or not (
        isinstance(key.curve, ec.SECP256R1)
    ):
        raise SigningError(f"{source}: expected an EC P-256 (secp256r1) key, got {_kind(key)}")


def _kind(key: object) -> str:
    curve = getattr(key, "curve", None)
    return f"an EC {curve.name} key" if curve else f"a {type(key).__name__.lstrip('_')}"


def load_public_key(data: bytes, source: str) -> ec.EllipticCurvePublicKey:
    """A PEM public key (or DER SubjectPublicKeyInfo, as KMS GetPublicKey returns it)."""
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningError(f"{source}: not a PEM public key") from None
    check_p256(key, source)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key
