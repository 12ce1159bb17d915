"""Which accounts a run covers: the config's filters and shards, without AWS."""

from __future__ import annotations

import pytest

from orgscan.accounts import AccountFilter, Shard
from orgscan.config import parse_config
from orgscan.model import Account

MGMT = "111111111111"


def _account(account_id: str, ou_path: str = "Root/Prod", state: str = "ACTIVE") -> Account:
    return Account(
        id=account_id, name=account_id, email="", state=state, ou_path=ou_path, ou_ids=()
    )


def _filter(shard: Shard | None = None, **organization: object) -> AccountFilter:
    return AccountFilter(parse_config({"organization": organization}).organization, MGMT, shard)


def test_exclusions_win_and_each_skip_names_its_key():
    f = _filter(
        include_ous=["Root/Prod"],
        exclude_ous=["Root/Prod/Legacy"],
        exclude_accounts=["222222222222"],
    )
    assert f.skip_reason(_account("333333333333")) is None
    assert f.skip_reason(_account("222222222222")) == "listed in organization.exclude_accounts"
    assert f.skip_reason(_account("444444444444", "Root/Dev")) == (
        "not under any OU in organization.include_ous"
    )
    assert f.skip_reason(_account("555555555555", "Root/Prod/Legacy/Old")) == (
        "under Root/Prod/Legacy, listed in organization.exclude_ous"
    )


def test_a_slash_in_an_ou_name_is_not_a_sub_ou():
    f = _filter(exclude_ous=["Root/Legacy"])
    assert f.skip_reason(_account("333333333333", r"Root/Legacy\/Old")) is None
    assert f.skip_reason(_account("444444444444", "Root/Legacy/Old")) is not None


def test_suspended_accounts_are_skipped_and_unknown_states_tried():
    f = _filter()
    assert "SUSPENDED" in (f.skip_reason(_account("333333333333", state="SUSPENDED")) or "")
    assert f.skip_reason(_account("444444444444", state="SOMETHING_NEW")) is None


def test_the_management_account_is_skipped_only_when_asked():
    assert _filter().skip_reason(_account(MGMT)) is None
    assert _filter(management_account="skip").skip_reason(_account(MGMT)) == (
        "management account; organization.management_account is 'skip'"
    )


def test_filters_that_matched_nothing_are_reported():
    f = _filter(include_accounts=["333333333333", "999999999999"], exclude_ous=["Root/Gone"])
    f.skip_reason(_account("333333333333"))
    assert f.unmatched() == [
        "organization.include_accounts: account 999999999999 is not in the organization",
        "organization.exclude_ous: Root/Gone matched no account",
    ]


def test_every_account_belongs_to_exactly_one_shard():
    ids = [f"{n:012d}" for n in range(200)]
    shards = [_filter(Shard(k, 3)) for k in (1, 2, 3)]
    owners = [[s.skip_reason(_account(i)) is None for s in shards] for i in ids]
    assert all(sum(o) == 1 for o in owners)
    assert all(any(o[k] for o in owners) for k in range(3))


@pytest.mark.parametrize("text", ["0/3", "4/3", "1-3", "a/b", ""])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="expected K/N"):
        Shard.parse(text)
