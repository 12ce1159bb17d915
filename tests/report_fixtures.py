"""A realistic ScanResult for the report tests, built directly (no moto) and passed through
findings.json first, so the tests see exactly what the evidence file carries."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from orgscan import evidence as codec
from orgscan.controls import builtin_controls
from orgscan.evaluate import evaluate
from orgscan.model import (
    AccessKey,
    Account,
    AccountResult,
    ApprovedException,
    LastUseSource,
    Limits,
    RootKeys,
    RootKeySource,
    RuleSettings,
    RunInfo,
    ScanError,
    ScanResult,
    ScanStatus,
    UserKeys,
)
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, load_rules

ORG = "o-abc123defg"
STARTED = datetime(2025, 3, 14, 9, 30, 0, tzinfo=UTC)

IMG_NAME = "<img src=x onerror=alert(1)>"
SCRIPT_NAME = '"><script>alert(1)</script>'
FORMULA_NAME = '=HYPERLINK("http://evil.example/","click me")'

PROD, DEV, SANDBOX, MGMT, FAILED, SUSPENDED, PARTIAL = (
    "222222222222",
    "333333333333",
    "444444444444",
    "111111111111",
    "555555555555",
    "666666666666",
    "777777777777",
)
# A user an SCP hides: its keys could not be read. The message is AWS's, and free text.
UNREADABLE_ARN = f"arn:aws:iam::{PARTIAL}:user/contractors/<b>vendor</b>"
SCP_DENIAL = ScanError(
    "AccessDenied",
    "User: arn:aws:sts::777777777777:assumed-role/OrgScanAudit/orgscan is not authorized to "
    "perform: iam:ListAccessKeys on resource: user <b>vendor</b> with an explicit deny in a "
    "service control policy",
)

# Lifecycle states other than ACTIVE: a closing account is scanned, a suspended one skipped.
STATES = {SANDBOX: "PENDING_CLOSURE", SUSPENDED: "SUSPENDED"}

# Key ids the tests name. The deployer's older key is the one in use: it must be kept even
# though the other is newer. Carol's keys were never used: the newer one is kept.
DEPLOYER_IN_USE = "AKIADEPLOYER00INUSE1"
DEPLOYER_NEWER = "AKIADEPLOYER00NEWER2"
CAROL_OLDER = "AKIACAROL00000OLDER1"
CAROL_NEWER = "AKIACAROL00000NEWER2"

VALID_EXCEPTION = ApprovedException(
    account=DEV,
    user="ci-runner",
    reason="Blue/green rotation in progress",
    owner="platform-team@example.com",
    expires=date(2099, 12, 31),
    ticket="SEC-1001",
)
EXPIRED_EXCEPTION = ApprovedException(
    account=DEV,
    user="arn:aws:iam::333333333333:user/engineering/*",
    reason="Vendor migration window",
    owner="eng-leads@example.com",
    expires=date(2025, 1, 31),
    ticket="SEC-0999",
)
UNUSED_EXCEPTION = ApprovedException(
    account=PROD,
    user="nobody",
    reason="Left over from a decommissioned pipeline",
    owner="=cmd|' /C calc'!A0",
    expires=date(2099, 1, 1),
    ticket=None,
)


def _t(days: int) -> datetime:
    return STARTED - timedelta(days=days)


def _key(
    key_id: str,
    status: str = "Active",
    created: int = 400,
    used: int | None = None,
    service: str | None = None,
) -> AccessKey:
    return AccessKey(
        id=key_id,
        status=status,
        created_at=_t(created),
        last_used_at=_t(used) if used is not None else None,
        last_used_service=service,
        last_used_region="us-east-1" if service else None,
        last_used_source=LastUseSource.CREDENTIAL_REPORT,
        last_used_as_of=STARTED - timedelta(hours=1),
    )


def _user(account: str, name: str, *keys: AccessKey, path: str = "/") -> UserKeys:
    return UserKeys(
        account_id=account,
        user_name=name,
        arn=f"arn:aws:iam::{account}:user{path}{name}",
        path=path,
        access_keys=keys,
    )


def _account(
    account_id: str,
    name: str,
    ou_path: str,
    status: ScanStatus,
    users: list[UserKeys] | None = None,
    *,
    error: ScanError | None = None,
    skip_reason: str | None = None,
) -> AccountResult:
    return AccountResult(
        account=Account(
            id=account_id,
            name=name,
            email=f"aws+{account_id}@example.com",
            state=STATES.get(account_id, "ACTIVE"),
            ou_path=ou_path,
            ou_ids=("r-ab12",),
        ),
        scan_status=status,
        users=users or [],
        error=error,
        skip_reason=skip_reason,
        api_calls=1 + len(users or []),
        # The management account's root user still has the key it was created with.
        root_keys=RootKeys(
            RootKeySource.CREDENTIAL_REPORT,
            STARTED - timedelta(hours=1),
            present=account_id == MGMT,
            active=int(account_id == MGMT),
        )
        if status in (ScanStatus.SCANNED, ScanStatus.PARTIAL)
        else None,
    )


def _accounts(complete: bool) -> list[AccountResult]:
    accounts = [
        _account(
            MGMT,
            "management",
            "Root",
            ScanStatus.SCANNED,
            [_user(MGMT, "break-glass", _key("AKIAMGMTBREAKGLASS01"))],
        ),
        _account(
            PROD,
            IMG_NAME,
            "Root/Workloads/Prod",
            ScanStatus.SCANNED,
            [
                _user(
                    PROD,
                    "deployer",
                    _key(DEPLOYER_IN_USE, created=300, used=1, service="s3"),
                    _key(DEPLOYER_NEWER, created=200, used=30, service="ec2"),
                ),
                _user(
                    PROD,
                    "reporting",
                    _key("AKIAREPORTING0ACTIVE", created=90, used=2, service="athena"),
                    _key("AKIAREPORTING0INACTV", status="Inactive", created=500),
                ),
            ],
        ),
        _account(
            DEV,
            SCRIPT_NAME,
            "Root/Workloads/Dev",
            ScanStatus.SCANNED,
            [
                _user(
                    DEV,
                    "carol",
                    _key(CAROL_OLDER, created=120),
                    _key(CAROL_NEWER, created=10),
                    path="/engineering/",
                ),
                _user(
                    DEV,
                    "ci-runner",
                    _key("AKIACIRUNNER00000001", created=50, used=3, service="sts"),
                    _key("AKIACIRUNNER00000002", created=5, used=4, service="sts"),
                ),
            ],
        ),
        _account(
            SANDBOX,
            FORMULA_NAME,
            "Root/Sandbox",
            ScanStatus.SCANNED,
            [
                _user(SANDBOX, "@admin", _key("AKIASANDBOXADMIN0001")),
                _user(
                    SANDBOX,
                    "bob.smith@corp",
                    _key("AKIASANDBOXBOB000001", created=20),
                    _key("AKIASANDBOXBOB000002", created=19),
                    path="/team+a/",
                ),
                _user(SANDBOX, "no-keys"),
            ],
        ),
        _account(
            SUSPENDED,
            "old-sandbox",
            "Root/Sandbox",
            ScanStatus.SKIPPED,
            skip_reason="account state is SUSPENDED; organization.include_states is ACTIVE, "
            "PENDING_CLOSURE",
        ),
    ]
    if not complete:
        accounts.append(
            _account(
                PARTIAL,
                "data-lake",
                "Root/Workloads/Prod",
                ScanStatus.PARTIAL,
                [
                    _user(PARTIAL, "builder", _key("AKIABUILDER000000001", used=1, service="s3")),
                    replace(
                        _user(PARTIAL, "<b>vendor</b>", path="/contractors/"), error=SCP_DENIAL
                    ),
                ],
            )
        )
        accounts.append(
            _account(
                FAILED,
                "dev-beta",
                "Root/Workloads/Dev",
                ScanStatus.FAILED,
                error=ScanError("AccessDenied", "not authorized to perform: sts:AssumeRole"),
            )
        )
    return accounts


def round_trip(result: ScanResult) -> ScanResult:
    """What `orgscan report` sees: the result as findings.json carries it."""
    return codec.decode(json.loads(codec.encode(result)), "round trip")


def scan_result(
    *,
    run_id: str = "20250314T093000Z-1a2b3c4d",
    started: datetime = STARTED,
    complete: bool = False,
    exceptions: tuple[ApprovedException, ...] = (
        VALID_EXCEPTION,
        EXPIRED_EXCEPTION,
        UNUSED_EXCEPTION,
    ),
    rules: Sequence[RuleSettings] = (RuleSettings(MULTIPLE_ACTIVE_KEYS),),
) -> ScanResult:
    """The scan of the report tests; `rules=ALL_RULES` evaluates every rule (HYGIENE_*)."""
    accounts = _accounts(complete)
    rules = list(rules)
    run = RunInfo(
        id=run_id,
        started_at=started,
        finished_at=started + timedelta(minutes=3, seconds=7),
        tool_version="0.1.0",
        caller_arn="arn:aws:sts::111111111111:assumed-role/Auditor/alice",
        organization_id=ORG,
        management_account_id=MGMT,
        partition="aws",
        strategy="live",
        role_name="OrgScanAudit",
        config_digest="sha256:" + "ab" * 32,
        limits=Limits(
            max_accounts_in_flight=8,
            management_rate_limit=20.0,
            account_rate_limit=10.0,
            max_attempts=8,
            call_timeout=30.0,
        ),
        complete=complete,
        api_calls=sum(a.api_calls for a in accounts),
        warnings=["exclude_accounts: 999999999999 is not in the organization"],
        rules=rules,
    )
    result = ScanResult(
        run=run,
        accounts=accounts,
        findings=evaluate(accounts, rules, exceptions, "aws", started),
        exceptions=list(exceptions),
        controls=list(builtin_controls()),
    )
    return round_trip(result)


# Every rule with its default thresholds; with these the fixture also fails the rotation rule
# (keys 400 days old), the unused rule (keys never used) and the root rule (the management
# account), and one exception covers the rotation rule.
ALL_RULES = tuple(RuleSettings(rule.id, dict(rule.parameters)) for rule in load_rules())
ROTATION_EXCEPTION = ApprovedException(
    account=PROD,
    user="deployer",
    reason="Key rotation scheduled with the vendor",
    owner="platform-team@example.com",
    expires=date(2099, 6, 30),
    ticket="SEC-1002",
    rules=("iam-access-key-not-rotated",),
)


def hygiene_result(complete: bool = False) -> ScanResult:
    """The report tests' scan under all four rules."""
    return scan_result(
        complete=complete,
        rules=ALL_RULES,
        exceptions=(VALID_EXCEPTION, EXPIRED_EXCEPTION, UNUSED_EXCEPTION, ROTATION_EXCEPTION),
    )


def without_open_findings(result: ScanResult) -> ScanResult:
    """The same scan with every failing user brought down to one active key."""
    accounts = []
    for account in result.accounts:
        users = [
            replace(user, access_keys=user.access_keys[:1])
            if (user.active_key_count or 0) > 1
            else user
            for user in account.users
        ]
        accounts.append(replace(account, users=users))
    return round_trip(replace(result, accounts=accounts, findings=[]))


def users_in(data: dict) -> list[dict]:
    """Every user of a findings.json document (2.0 keeps each account's users inside it)."""
    return [user for account in data["accounts"] for user in account["users"]]


def account_in(data: dict, account_id: str) -> dict:
    """One account of a findings.json document, its identity under `account`."""
    return next(a for a in data["accounts"] if a["account"]["id"] == account_id)


def rescanned(
    result: ScanResult,
    run_id: str,
    keys: Callable[[UserKeys, AccessKey], AccessKey] = lambda user, key: key,
    *,
    rules: Sequence[RuleSettings] | None = None,
    accounts: Callable[[AccountResult], AccountResult] = lambda account: account,
    exceptions: Sequence[ApprovedException] | None = None,
) -> ScanResult:
    """The same organization scanned again: each key through `keys`, each account through
    `accounts`, judged again by `rules` (default: the scan's own) and `exceptions`."""
    rules = list(result.run.rules if rules is None else rules)
    changed = [
        accounts(
            replace(
                account,
                users=[
                    replace(user, access_keys=tuple(keys(user, key) for key in user.access_keys))
                    for user in account.users
                ],
                coverage=[],
            )
        )
        for account in result.accounts
    ]
    approved = list(result.exceptions if exceptions is None else exceptions)
    return round_trip(
        replace(
            result,
            run=replace(result.run, id=run_id, rules=rules),
            accounts=changed,
            findings=evaluate(changed, rules, approved, "aws", result.run.started_at),
            exceptions=approved,
            delta=None,
        )
    )
