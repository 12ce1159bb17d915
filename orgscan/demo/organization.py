"""The demo organization: a dozen accounts in nested OUs, with the cases a real sweep meets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orgscan.demo.faults import Fault, KeyHistory, RootKey
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, SeededOrg, UserSpec
from orgscan.model import utcnow

DEMO_ORG = OrgSpec(
    management_users=(
        UserSpec("break-glass", (ACTIVE,)),
        UserSpec("legacy-admin", (ACTIVE, INACTIVE)),
    ),
    accounts=(
        AccountSpec(
            "security-tooling",
            "Root/Security",
            (UserSpec("siem-forwarder", (ACTIVE,)), UserSpec("scanner-readonly", ())),
        ),
        AccountSpec("log-archive", "Root/Security", (UserSpec("s3-replicator", (INACTIVE,)),)),
        AccountSpec(
            "prod-web",
            "Root/Workloads/Prod/Web",
            (
                UserSpec("deploy-bot", (ACTIVE, ACTIVE)),
                UserSpec("cdn-purger", (ACTIVE, INACTIVE)),
                UserSpec("alice", (ACTIVE,), "/engineering/"),
            ),
        ),
        AccountSpec(
            "prod-data",
            "Root/Workloads/Prod/Data",
            (
                UserSpec("etl-runner", (ACTIVE, ACTIVE)),
                UserSpec("analyst-bob", (ACTIVE,), "/analytics/"),
                UserSpec("backup-agent", (INACTIVE, INACTIVE)),
            ),
        ),
        AccountSpec(
            "staging",
            "Root/Workloads/Staging",
            (UserSpec("ci-deployer", (ACTIVE, ACTIVE)), UserSpec("qa-runner", (ACTIVE,))),
        ),
        AccountSpec(
            "dev-alpha",
            "Root/Workloads/Dev",
            (
                UserSpec("carol", (ACTIVE, ACTIVE), "/engineering/"),
                UserSpec("dave", (ACTIVE,), "/engineering/"),
            ),
        ),
        AccountSpec("dev-beta", "Root/Workloads/Dev", (UserSpec("erin", (ACTIVE, ACTIVE)),)),
        AccountSpec(
            "shared-network",
            "Root/Infrastructure",
            (
                UserSpec("vpn-bot", (ACTIVE,)),
                UserSpec("vendor-sync", (ACTIVE, ACTIVE), "/contractors/"),
            ),
        ),
        AccountSpec("sandbox-frank", "Root/Sandbox", (UserSpec("frank", (ACTIVE, ACTIVE)),)),
        AccountSpec("sandbox-old", "Root/Sandbox", (UserSpec("ghost", (ACTIVE,)),), suspended=True),
        AccountSpec("billing", "Root", ()),
    ),
)

# dev-beta's audit role is missing a trust relationship: AssumeRole is denied there.
DENIED_ACCOUNT = "dev-beta"
# An SCP on /contractors/ in shared-network denies reading that user's keys: a partial account.
HIDDEN_USER = ("shared-network", "vendor-sync")
# Lifecycle states as today's Organizations API gives them (`State` only): a closing account is
# still scanned (its keys work until it is closed); a closed one is skipped.
DEMO_STATES = {"sandbox-frank": "PENDING_CLOSURE", "sandbox-old": "CLOSED"}


# What moto cannot hold: how old keys are and when they were last used (days before the demo
# runs), by (account, user), one entry per key in creation order; keys not named here were
# created as the demo started and never used. Each access-key rule gets a case of its own:
KEY_AGES: dict[tuple[str, str], tuple[tuple[int, int | None], ...]] = {
    # two active keys, the older one in use and 400 days old: one active key + not rotated
    ("prod-web", "deploy-bot"): ((400, 2), (30, 1)),
    # one active key, 200 days old but in daily use: not rotated only
    ("prod-web", "cdn-purger"): ((200, 1), (500, 300)),
    # created 60 days ago and never used: unused only
    ("dev-alpha", "dave"): ((60, None),),
    # last used 70 days ago, created 80 days ago: unused only
    ("prod-data", "analyst-bob"): ((80, 70),),
    # 150 days old, rotation excepted until a vendor appliance is replaced (see demo_config)
    ("security-tooling", "siem-forwarder"): ((150, 0),),
    # recently created and used: passes every rule
    ("staging", "qa-runner"): ((20, 1),),
}
# log-archive's root user still has the access key it was given when the account was created.
ROOT_KEY_ACCOUNT = ("log-archive", 900, 400)


def demo_faults(seeded: SeededOrg, now: datetime | None = None) -> list[Fault]:
    now = now or utcnow()

    def ago(days: int | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    history = tuple(
        KeyHistory(key_id, created=now - timedelta(days=created), last_used=ago(used))
        for (account, user), ages in KEY_AGES.items()
        for key_id, (created, used) in zip(seeded.key_ids[(account, user)], ages, strict=True)
    )
    root_account, created, used = ROOT_KEY_ACCOUNT
    return [
        Fault(key_history=history),
        Fault(
            root_keys=(
                RootKey(
                    seeded.account_ids[root_account],
                    created=now - timedelta(days=created),
                    last_used=ago(used),
                ),
            )
        ),
        Fault(states=tuple((seeded.account_ids[n], s) for n, s in DEMO_STATES.items())),
        Fault(
            action="AssumeRole",
            account=seeded.account_ids[DENIED_ACCOUNT],
            error="AccessDenied",
            message="User: arn:aws:sts::123456789012:assumed-role/OrgScanAudit/orgscan is not "
            "authorized to perform: sts:AssumeRole on resource: "
            f"arn:aws:iam::{seeded.account_ids[DENIED_ACCOUNT]}:role/OrgScanAudit",
        ),
        Fault(
            action="ListAccessKeys",
            account=seeded.account_ids[HIDDEN_USER[0]],
            user=HIDDEN_USER[1],
            error="AccessDenied",
            message="User: arn:aws:sts::123456789012:assumed-role/OrgScanAudit/orgscan is not "
            f"authorized to perform: iam:ListAccessKeys on resource: user {HIDDEN_USER[1]} "
            "with an explicit deny in a service control policy",
        ),
    ]


def demo_config(seeded: SeededOrg) -> dict[str, Any]:
    """The demo's config, as a user would write it; account ids are only known after seeding."""
    return {
        "organization": {"management_account": "auto"},
        "role": {"name": "OrgScanAudit", "session_name": "orgscan-demo"},
        "scan": {"strategy": "live", "max_accounts_in_flight": 8},
        "exceptions": [
            {
                "account": seeded.account_ids["staging"],
                "user": "ci-deployer",
                "reason": "Blue/green key rotation in progress",
                "owner": "platform-team@example.com",
                "expires": "2099-03-31",
                "ticket": "SEC-1234",
            },
            {
                "account": seeded.account_ids["prod-data"],
                "user": "etl-runner",
                "reason": "Vendor migration window",
                "owner": "data-team@example.com",
                "expires": "2026-06-30",
                "ticket": "SEC-1187",
            },
            {
                "account": seeded.account_ids["security-tooling"],
                "user": "siem-forwarder",
                "reason": "The SIEM appliance takes a static key; replaced in Q2",
                "owner": "secops@example.com",
                "expires": "2099-06-30",
                "ticket": "SEC-1302",
                "rules": ["iam-access-key-not-rotated"],
            },
        ],
    }
