"""How one key change is journaled, against an in-memory IAM: what AWS answered, and what a
re-read of the key shows when the answer is unclear."""

from __future__ import annotations

from botocore.exceptions import EndpointConnectionError

from orgscan.remediation.apply import Entry, Outcome, _change, _watch_attempts
from tests.unit.fakes import FakeIam, client_error

KEY = "AKIAEXAMPLE000000001"


def _base() -> Entry:
    return Entry(
        account_id="111111111111",
        user_name="bob",
        arn="arn:aws:iam::111111111111:user/bob",
        access_key_id=KEY,
        outcome=Outcome.PENDING,
        before_status="Active",
    )


async def _run(iam: FakeIam) -> list[Entry]:
    journal: list[Entry] = []
    iam.journal = journal

    async def record(entry: Entry) -> None:
        journal.append(entry)

    _watch_attempts(iam)
    await _change(iam, record, _base(), "Inactive", Outcome.DEACTIVATED, "extra key")
    return journal


async def test_a_change_is_journaled_pending_before_it_is_sent_then_done():
    iam = FakeIam({"bob": {KEY: "Active"}})
    journal = await _run(iam)
    assert [e.outcome for e in journal] == [Outcome.PENDING, Outcome.DEACTIVATED]
    assert journal[-1].after_status == "Inactive"
    assert iam.users["bob"][KEY] == "Inactive"


async def test_a_lost_answer_is_settled_by_re_reading_the_key():
    iam = FakeIam({"bob": {KEY: "Active"}})
    iam.attempts = [EndpointConnectionError(endpoint_url="https://iam")]
    iam.fail["UpdateAccessKey"] = [EndpointConnectionError(endpoint_url="https://iam")]
    journal = await _run(iam)  # the change went through; its answer did not come back
    assert journal[-1].outcome is Outcome.DEACTIVATED
    assert "re-reading shows the key Inactive" in (journal[-1].reason or "")


async def test_a_change_aws_refused_on_every_attempt_is_failed():
    iam = FakeIam({"bob": {KEY: "Active"}})
    iam.applies = False
    iam.attempts = [None, None]  # two answers, both refusals
    iam.fail["UpdateAccessKey"] = [client_error("Throttling", "UpdateAccessKey")]
    journal = await _run(iam)
    assert journal[-1].outcome is Outcome.FAILED
    assert journal[-1].after_status == "Active"


async def test_a_change_that_may_still_arrive_stays_pending():
    iam = FakeIam({"bob": {KEY: "Active"}})
    iam.applies = False
    # One attempt got no answer at all: that request may still take effect.
    iam.attempts = [EndpointConnectionError(endpoint_url="https://iam"), None]
    iam.fail["UpdateAccessKey"] = [client_error("Throttling", "UpdateAccessKey")]
    journal = await _run(iam)
    assert journal[-1].outcome is Outcome.PENDING
    assert "may yet arrive" in (journal[-1].reason or "")


async def test_a_key_deleted_meanwhile_is_skipped():
    iam = FakeIam({"bob": {KEY: "Active"}})
    iam.applies = False
    iam.fail["UpdateAccessKey"] = [client_error("NoSuchEntity", "UpdateAccessKey")]
    iam.users["bob"] = {}
    journal = await _run(iam)
    assert journal[-1].outcome is Outcome.SKIPPED
