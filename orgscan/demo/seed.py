"""Seed an organization into moto for real: accounts in OUs, then users and keys in each account.

Member accounts are seeded by assuming a role into them, as in AWS, so their IAM data lands in
their own account. Organizations are declared as data (OrgSpec) so tests can state shapes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3

from orgscan.model import join_ou_path, split_ou_path

ACTIVE = "Active"
INACTIVE = "Inactive"


@dataclass(frozen=True, slots=True)
class UserSpec:
    name: str
    keys: tuple[str, ...] = ()  # one status per key, "Active" or "Inactive"; AWS allows two
    path: str = "/"


@dataclass(frozen=True, slots=True)
class AccountSpec:
    name: str
    ou: str = "Root"  # a path like "Root/Prod/Web" (see join_ou_path); missing OUs are created
    users: tuple[UserSpec, ...] = ()
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class OrgSpec:
    accounts: tuple[AccountSpec, ...]
    management_users: tuple[UserSpec, ...] = ()
    management_name: str = "management"


@dataclass(slots=True)
class SeededOrg:
    organization_id: str
    management_account_id: str
    account_ids: dict[str, str] = field(default_factory=dict)  # account name → id
    ou_ids: dict[str, str] = field(default_factory=dict)  # OU path → id
    key_secrets: dict[str, str] = field(default_factory=dict)  # access key id → its secret
    # (account name, user name) → its access key ids, in creation order: what the fault layer's
    # KeyHistory is keyed by.
    key_ids: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        return list(self.key_secrets.values())


def _ensure_ou(org: Any, seeded: SeededOrg, path: str) -> str:
    if path in seeded.ou_ids:
        return seeded.ou_ids[path]
    names = split_ou_path(path)
    parent = _ensure_ou(org, seeded, join_ou_path(names[:-1]))
    ou = org.create_organizational_unit(ParentId=parent, Name=names[-1])["OrganizationalUnit"]
    seeded.ou_ids[path] = ou["Id"]
    return str(ou["Id"])


def _seed_users(
    iam: Any, users: tuple[UserSpec, ...], secrets: dict[str, str]
) -> dict[str, list[str]]:
    """The users and their keys; returns each user's key ids by user name."""
    key_ids: dict[str, list[str]] = {}
    for user in users:
        iam.create_user(UserName=user.name, Path=user.path)
        key_ids[user.name] = []
        for status in user.keys:
            key = iam.create_access_key(UserName=user.name)["AccessKey"]
            secrets[key["AccessKeyId"]] = key["SecretAccessKey"]
            key_ids[user.name].append(key["AccessKeyId"])
            if status == INACTIVE:
                iam.update_access_key(
                    UserName=user.name, AccessKeyId=key["AccessKeyId"], Status=INACTIVE
                )
    return key_ids


def member_iam(sts: Any, account_id: str, endpoint: str | None = None) -> Any:
    """An IAM client inside a member account, entered as AWS's own org admin role."""
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
        RoleSessionName="orgscan-seed",
    )["Credentials"]
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def seed_organization(spec: OrgSpec, endpoint: str, threads: int = 8) -> SeededOrg:
    """Create the organization in moto at `endpoint`; the caller's account is the management."""
    client_args: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    org = boto3.client("organizations", **client_args)
    sts = boto3.client("sts", **client_args)
    organization = org.create_organization(FeatureSet="ALL")["Organization"]
    seeded = SeededOrg(organization["Id"], organization["MasterAccountId"])
    seeded.ou_ids["Root"] = org.list_roots()["Roots"][0]["Id"]
    seeded.account_ids[spec.management_name] = seeded.management_account_id
    for account in spec.accounts:
        status = org.create_account(Email=f"{account.name}@example.com", AccountName=account.name)
        account_id = status["CreateAccountStatus"]["AccountId"]
        seeded.account_ids[account.name] = account_id
        if account.ou != "Root":
            org.move_account(
                AccountId=account_id,
                SourceParentId=seeded.ou_ids["Root"],
                DestinationParentId=_ensure_ou(org, seeded, account.ou),
            )

    def seed(account: AccountSpec) -> tuple[str, dict[str, str], dict[str, list[str]]]:
        secrets: dict[str, str] = {}
        iam = member_iam(sts, seeded.account_ids[account.name], endpoint)
        return account.name, secrets, _seed_users(iam, account.users, secrets)

    management = _seed_users(
        boto3.client("iam", **client_args), spec.management_users, seeded.key_secrets
    )
    seeded.key_ids.update(((spec.management_name, u), ids) for u, ids in management.items())
    with ThreadPoolExecutor(threads) as pool:
        for name, secrets, key_ids in pool.map(seed, [a for a in spec.accounts if a.users]):
            seeded.key_secrets.update(secrets)
            seeded.key_ids.update(((name, u), ids) for u, ids in key_ids.items())
    for account in spec.accounts:
        if account.suspended:
            org.close_account(AccountId=seeded.account_ids[account.name])
    return seeded
