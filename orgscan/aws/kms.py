"""AWS KMS: the only place orgscan calls it. Signs the attestation with an asymmetric key
(`kms:Sign`, ECDSA P-256 / SHA-256; the private key never leaves KMS) and fetches the public
key for verification (`kms:GetPublicKey`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from orgscan.aws.clients import ClientFactory
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.config import ScanConfig
from orgscan.signing import KMS_PREFIX, SigningError, load_public_key

# cosign's form: awskms:///<key ARN> or awskms:///alias/<name> (the endpoint part left empty:
# the standard AWS endpoint variables choose it, as for every other call).
_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(key|alias)/[A-Za-z0-9/_+=.@-]+$")
_ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]+$")
# A bare key id, as KMS's KeyId takes it and cosign accepts: a UUID, or mrk-... for a
# multi-Region key.
_KEY_ID = re.compile(
    r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
SIGNING_ALGORITHM = "ECDSA_SHA_256"
KEY_SPEC = "ECC_NIST_P256"


def is_kms_ref(ref: str) -> bool:
    return ref.startswith("awskms://")


def parse_ref(ref: str, option: str) -> str:
    """The KeyId of an `awskms:///...` reference (a key or alias ARN, a key id, alias/NAME)."""
    key = ref[len(KMS_PREFIX) :] if ref.startswith(KMS_PREFIX) else ""
    if not (_ARN.match(key) or _ALIAS.match(key) or _KEY_ID.match(key)):
        raise SigningError(
            f"{option}: expected awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID, awskms:///KEY-ID "
            f"or awskms:///alias/NAME, got {ref!r}"
        )
    return key


@dataclass(slots=True)
class KmsSigner:
    """Signs through KMS with MessageType=DIGEST: KMS gets SHA-256(PAE) and signs it as is.
    A RAW message is capped at 4096 bytes, which a statement over a large package could pass;
    a digest is always 32 bytes, and the package itself never leaves the machine."""

    key_id: str
    scan: ScanConfig
    keyid: str = ""  # the key's ARN, as KMS reports it, once known

    def __post_init__(self) -> None:
        self.keyid = self.keyid or self.key_id

    async def _call(self, operation: str, **params: object) -> dict[str, object]:
        factory = ClientFactory(self.scan)
        arn = _ARN.match(self.key_id)
        if arn and arn.group(1) != factory.region:
            raise SigningError(
                f"KMS key {self.key_id} is in {arn.group(1)}; set AWS_REGION={arn.group(1)} "
                f"(the configured region is {factory.region})"
            )
        limiter, counter = RateLimiter(self.scan.management_rate_limit), CallCounter()
        try:
            async with factory, factory.client("kms", limiter, counter) as kms:
                response: dict[str, object] = await getattr(kms, operation)(**params)
                return response
        except SigningError:
            raise
        except Exception as exc:
            raise SigningError(
                f"KMS {operation} on {self.key_id}: {error_code(exc)}: {error_message(exc)}"
            ) from None

    async def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key's public half, after checking it is an ECDSA P-256 signing key."""
        answer = await self._call("get_public_key", KeyId=self.key_id)
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        algorithms = answer.get("SigningAlgorithms") or []
        if answer.get("KeyUsage") != "SIGN_VERIFY" or spec != KEY_SPEC:
            raise SigningError(
                f"KMS key {self.key_id}: expected an {KEY_SPEC} SIGN_VERIFY key, got "
                f"{spec} {answer.get('KeyUsage')}"
            )
        if not isinstance(algorithms, list) or SIGNING_ALGORITHM not in algorithms:
            raise SigningError(f"KMS key {self.key_id}: does not sign with {SIGNING_ALGORITHM}")
        der = answer.get("PublicKey")
        assert isinstance(der, bytes)
        return load_public_key(der, f"KMS key {self.key_id}")

    async def sign(self, message: bytes) -> bytes:
        answer = await self._call(
            "sign",
            KeyId=self.key_id,
            Message=hashlib.sha256(message).digest(),
            MessageType="DIGEST",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        self.keyid = str(answer.get("KeyId") or self.key_id)
        signature = answer.get("Signature")
        assert isinstance(signature, bytes)
        return signature  # DER-encoded ECDSA, as KMS returns it
