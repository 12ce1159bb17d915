"""The demo organization: a dozen accounts in nested OUs, with the cases a real sweep meets."""

from __future__ import annotations

from typing import Any

from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, SeededOrg, UserSpec

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


def demo_faults(seeded: SeededOrg) -> list[Fault]:
    return [
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
        ],
    }
