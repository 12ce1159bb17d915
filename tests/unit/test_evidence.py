"""The evidence codec: findings.json 2.0, the 1.x packages it still reads, and its schema."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from orgscan import evidence as codec
from orgscan.delta import compare
from orgscan.model import ScanError, ScanResult, ScanStatus
from orgscan.remediation.apply import (
    END,
    ENTRY,
    Entry,
    Journal,
    JournalEnd,
    JournalFile,
    Outcome,
    RemediationError,
    _header,
    read_journal,
)
from orgscan.remediation.plan import PLAN, PlanError, build_plan, load_evidence
from orgscan.remediation.plan import read as read_plan
from orgscan.remediation.plan import write as write_plan
from tests.conftest import findings_schema
from tests.report_fixtures import (
    PARTIAL,
    STARTED,
    UNREADABLE_ARN,
    account_in,
    scan_result,
    users_in,
    without_open_findings,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "evidence"
# Written by tests/fixtures/evidence/generate.py: v1_0 with c34b649's code, v1_1 with main's
# before the codec; every optional field that version had is set.
OLD_PACKAGES = ["v1_0", "v1_1"]


def every_field() -> ScanResult:
    """A result with every optional field set: delta, exceptions, partial, failed and skipped
    accounts, an unreadable user, a key whose last use is unknown, notes, a resumed run."""
    result = scan_result()
    baseline = without_open_findings(
        scan_result(run_id="20250101T000000Z-0b0b0b0b", started=STARTED - timedelta(days=72))
    )
    result.delta = compare(baseline, result)
    result.run.resumed_from = "20250314T080000Z-5e5e5e5e"
    result.run.interrupted = "SIGTERM"
    result.run.shard = "1/2"
    result.run.errors.append(ScanError("OUWalkIncomplete", "the OU walk broke off"))
    partial = next(a for a in result.accounts if a.scan_status is ScanStatus.PARTIAL)
    partial.notes.append("2 users were deleted during the scan")
    partial.throttles, partial.rate_at_end = 17, 3.5
    index, user = next((i, u) for i, u in enumerate(partial.users) if u.access_keys)
    key = replace(user.access_keys[0], last_used_error=ScanError("Throttling", "Rate exceeded"))
    partial.users[index] = replace(user, access_keys=(key, *user.access_keys[1:]))
    return result


def test_the_committed_schema_is_what_the_codec_generates() -> None:
    """Regenerate with `python -m orgscan.evidence --write-schema` after a model change."""
    assert codec.SCHEMA_PATH.read_text(encoding="utf-8") == codec.schema_text()


def test_the_schema_requires_every_field_and_refuses_others() -> None:
    data = codec.document(every_field())
    findings_schema().validate(data)
    del data["accounts"][0]["users"]
    assert not findings_schema().is_valid(data)
    data = codec.document(every_field())
    data["accounts"][0]["account"]["status"] = "ACTIVE"  # 1.0's name, not 2.0's
    assert not findings_schema().is_valid(data)


def test_decode_then_encode_is_the_identity_with_every_field_set() -> None:
    result = every_field()
    assert result.delta is not None and result.delta.findings
    assert any(u.error for u in result.users) and any(a.notes for a in result.accounts)
    assert {a.scan_status for a in result.accounts} == set(ScanStatus)
    stored = codec.encode(result)
    assert json.loads(stored) == codec.document(result)
    again = codec.decode(json.loads(stored), "round trip")
    assert codec.encode(again) == stored
    assert again.delta == result.delta
    assert again.accounts == result.accounts
    assert again.run == result.run


def test_findings_json_keeps_the_evidence_auditors_read(tmp_path: Path) -> None:
    """Per-user counts, user_count, delta counts and the summary are in the file."""
    data = codec.document(every_field())
    vendor = next(u for u in users_in(data) if u["arn"] == UNREADABLE_ARN)
    assert (vendor["key_count"], vendor["active_key_count"]) == (None, None)
    deployer = next(u for u in users_in(data) if u["user_name"] == "deployer")
    assert (deployer["key_count"], deployer["active_key_count"]) == (2, 2)
    assert account_in(data, PARTIAL)["user_count"] == 2
    assert data["summary"]["users_unreadable"] == 1
    assert data["summary"]["accounts_partial"] == 1
    assert sum(data["delta"]["counts"].values()) == len(data["delta"]["findings"])
    assert data["run"]["started_at"] == "2025-03-14T09:30:00Z"


@pytest.mark.parametrize("version", OLD_PACKAGES)
def test_an_old_package_reads_into_the_same_evidence(version: str) -> None:
    data = json.loads((FIXTURES / version / "findings.json").read_bytes())
    result = codec.decode(data, version)
    old_users = {u["arn"]: u for u in data["users"]}
    assert {u.arn for u in result.users} == set(old_users)
    for user in result.users:
        stored = old_users[user.arn]
        assert user.account_id == stored["account_id"]
        assert (user.key_count, user.active_key_count) == (
            stored["key_count"],
            stored["active_key_count"],
        )
    states = {a.account.id: a.account.state for a in result.accounts}
    lifecycle = "status" if version == "v1_0" else "state"
    assert states == {a["id"]: a[lifecycle] for a in data["accounts"]}
    # 1.0 had no partial accounts nor unreadable users; their counts are now 0.
    assert data["summary"].items() <= codec.document(result)["summary"].items()
    assert result.run.complete is False and result.delta is not None


def test_a_2_0_file_written_before_the_adaptive_rate_still_reads() -> None:
    # `throttles` and `rate_at_end` came after 2.0's first files: absent, they mean unmeasured;
    # the run's limits had no `adaptive_rate`: its rates were fixed.
    result = every_field()
    result.run.limits = replace(result.run.limits, adaptive_rate=True)
    data = codec.document(result)
    assert {(a["throttles"], a["rate_at_end"]) for a in data["accounts"]} >= {(17, 3.5)}
    assert data["run"]["limits"]["adaptive_rate"] is True
    for account in data["accounts"]:
        del account["throttles"], account["rate_at_end"]
    del data["run"]["limits"]["adaptive_rate"]
    older = codec.decode(data, "older 2.0")
    assert {(a.throttles, a.rate_at_end) for a in older.accounts} == {(0, None)}
    assert older.run.limits.adaptive_rate is False
    assert [a.users for a in older.accounts] == [a.users for a in result.accounts]


def test_the_upgrade_is_one_translation_into_the_current_shape() -> None:
    data = json.loads((FIXTURES / "v1_0" / "findings.json").read_bytes())
    upgraded = codec.upgraded(data)
    assert "users" not in upgraded
    first = upgraded["accounts"][0]
    assert set(first["account"]) == {"id", "name", "email", "state", "ou_path", "ou_ids"}
    assert all(u["account_id"] == first["account"]["id"] for u in first["users"])
    orphan = data | {"users": [*data["users"], data["users"][0] | {"account_id": "999"}]}
    with pytest.raises(codec.EvidenceError, match="accounts the evidence does not have: 999"):
        codec.decode(orphan, "orphan")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d | {"schema_version": "3.0"}, r"schema_version '3\.0' is not supported"),
        (lambda d: d | {"schema_version": None}, "schema_version None is not supported"),
        (lambda d: d["run"].pop("started_at"), r"where: run\.started_at: Field required"),
        (
            lambda d: d["accounts"][2]["users"][0].update(user_name=7),
            r"accounts\[2\]\.users\[0\]\.user_name: Input should be a valid string",
        ),
        (
            lambda d: d["run"].update(api_calls="17"),
            r"run\.api_calls: Input should be a valid integer",
        ),
        (
            lambda d: d["run"].update(started_at="2025-03-14T10:30:00+01:00"),
            r"run\.started_at: Value error, expected an ISO 8601 time in UTC ending in 'Z'",
        ),
        (
            lambda d: d["accounts"][0].update(scan_status="done"),
            r"accounts\[0\]\.scan_status: Input should be 'scanned', 'partial'",
        ),
        # Unknown fields are refused, not dropped: a typo must not read as an absent field.
        (lambda d: d["run"].update(bogus=1), r"where: run\.bogus: Unexpected keyword argument"),
        (
            lambda d: d["accounts"][2]["users"][0].update(acess_keys=[]),
            r"accounts\[2\]\.users\[0\]\.acess_keys: Unexpected keyword argument",
        ),
        # A computed field is read nowhere but where the codec writes it.
        (
            lambda d: d["run"].update(summary={}),
            r"run\.summary: Unexpected keyword argument",
        ),
    ],
)
def test_bad_evidence_is_refused_naming_the_field(change, message) -> None:  # type: ignore[no-untyped-def]
    data = codec.document(every_field())
    changed = change(data)
    with pytest.raises(codec.EvidenceError, match=message):
        codec.decode(changed if isinstance(changed, dict) and "run" in changed else data, "where")


# The remediation plan and the journal go through the same codec. ----------------------------


def plan_of(result: ScanResult, tmp_path: Path) -> Path:
    findings = tmp_path / codec.FILENAME
    findings.write_bytes(codec.encode(result))
    plan = build_plan(*load_evidence(findings))
    assert plan.actions
    return write_plan(plan, tmp_path / "plan.json")[0]


def test_a_plan_reads_back_as_written_and_keeps_its_shape(tmp_path: Path) -> None:
    path = plan_of(scan_result(), tmp_path)
    plan = read_plan(path)
    assert path.read_text() == json.dumps(PLAN.document(plan), indent=2) + "\n"
    data = json.loads(path.read_bytes())
    assert list(data)[:2] == ["kind", "schema_version"]
    assert set(data["actions"][0]["deactivate"][0]) == {
        "access_key_id",
        "created_at",
        "last_used_at",
        "rules",
    }


def test_a_plan_with_a_bad_field_is_refused_naming_it(tmp_path: Path) -> None:
    path = plan_of(scan_result(), tmp_path)
    data = json.loads(path.read_bytes())
    data["actions"][0]["deactivate"][0]["created_at"] = "2024-01-01T00:00:00"
    data["actions"][0]["keep"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError) as refused:
        read_plan(path)
    assert str(refused.value) == (
        f"{path}: malformed plan: actions[0].keep: Input should be a valid string; "
        "actions[0].deactivate[0].created_at: Value error, expected an ISO 8601 time in UTC "
        "ending in 'Z', got '2024-01-01T00:00:00'"
    )


def test_a_plan_with_an_unknown_field_is_refused_naming_it(tmp_path: Path) -> None:
    path = plan_of(scan_result(), tmp_path)
    data = json.loads(path.read_bytes())
    data["actions"][0]["deactivate"][0]["keep"] = True
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=r"deactivate\[0\]\.keep: Unexpected keyword argument"):
        read_plan(path)


def journal_entries() -> list[Entry]:
    at = STARTED + timedelta(hours=1)
    return [
        Entry(
            account_id="222222222222",
            user_name=f"u{i}",
            arn=f"arn:aws:iam::222222222222:user/u{i}",
            access_key_id=f"AKIA{i:016d}",
            outcome=Outcome.PENDING if i else Outcome.DEACTIVATED,
            reason="keeping the key in use",
            before_status="Active",
            before_last_used_at=STARTED if i else None,
            after_status=None if i else "Inactive",
            at=at,
        )
        for i in range(2)
    ]


def written_journal(tmp_path: Path) -> Path:
    journal = Journal("apply", "run-1", "o-abc123defg", STARTED, evidence_sha256="ab" * 32)
    path = tmp_path / "journal.jsonl"
    file = JournalFile.create(path, _header(journal))
    file.append_now([ENTRY.document(e) for e in journal_entries()])
    file.close()
    return path


def test_journal_entries_read_back_as_written(tmp_path: Path) -> None:
    path = written_journal(tmp_path)
    header, first, _ = (json.loads(line) for line in path.read_text().splitlines())
    assert header["schema_version"] == "2.0"
    assert (first["record"], first["before_status"], first["after_status"]) == (
        "entry",
        "Active",
        "Inactive",
    )
    journal = read_journal(path)
    assert journal.entries == journal_entries()
    assert journal.evidence_sha256 == "ab" * 32


def test_a_journal_line_with_a_bad_field_is_refused_naming_it(tmp_path: Path) -> None:
    path = written_journal(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"pending"', '"undone"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RemediationError, match=r"line 3: outcome: Input should be 'deactivated'"):
        read_journal(path)
    lines[0] = lines[0].replace('"2.0"', '"3.0"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RemediationError, match=r"schema_version '3\.0' is not supported"):
        read_journal(path)


def test_the_journal_header_and_end_go_through_the_codec(tmp_path: Path) -> None:
    """Written and read by the codec like the entries: strictly, each complaint naming its line."""
    path = written_journal(tmp_path)
    end = JournalEnd(STARTED + timedelta(hours=2), "SIGINT")
    with path.open("a") as file:
        file.write(json.dumps(END.document(end)) + "\n")
    journal = read_journal(path)
    assert (journal.finished_at, journal.interrupted) == (end.finished_at, "SIGINT")
    assert (journal.action, journal.organization_id, journal.started_at) == (
        "apply",
        "o-abc123defg",
        STARTED,
    )
    lines = path.read_text().splitlines()
    for number, old, new, message in [
        (1, '"rolls_back"', '"rolls_bakc"', "rolls_bakc: Unexpected keyword argument"),
        (4, 'Z"', '+00:00"', "finished_at: Value error, expected an ISO 8601 time in UTC"),
    ]:
        changed = lines.copy()
        changed[number - 1] = changed[number - 1].replace(old, new)
        path.write_text("\n".join(changed) + "\n")
        with pytest.raises(RemediationError, match=rf"line {number}: {message}"):
            read_journal(path)
