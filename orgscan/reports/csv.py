"""`findings.csv`: one row per finding, and one per user with none, for spreadsheets.

UTF-8 without a byte-order mark, RFC 4180 quoting and CRLF line ends. The header is `HEADER`;
columns are only ever added at the end, so the first fourteen are those of the releases before
there were several rules.

Rows: each finding is a row naming its rule (`rule_id`), its resource and its one line of
evidence (`detail`), so a spreadsheet filter on `rule_id` gives one rule's findings; each user
with no finding keeps its row too (`rule_id` empty, `state` `pass` or `error`), so every user the
scan read is in the sheet, as before. A key finding carries its key's evidence (created, last
used, where the last use was read and as of when); a root finding names the account's root user
(`<root_account>`, its ARN `arn:<partition>:iam::<id>:root`). With the one-active-key rule alone
(evidence older than the rules) this is exactly one row per user, as it always was.

`state` is `open` or `excepted` for a finding, `pass` or `error` for a user without one;
`account_state` is the account's lifecycle state in the organization (ACTIVE, or PENDING_CLOSURE
for a closing account whose keys still work). The exception columns name the approval that
excepts the finding; for an `open` finding whose approval expired they name that lapsed approval,
so the state column is the one that says whether an exception applies.

A user whose keys could not be read has the state `error`, empty counts and its AWS error in
`error`; `account_scan_status` (`scanned` or `partial`) lets a spreadsheet count the users of
partly scanned accounts apart, and `rules_incomplete` names the run's rules that could not judge
everything in the row's account: a `pass` there is not a pass of those rules.

Cells that a spreadsheet would run as a formula (first character `=`, `+`, `-`, `@`, tab or
carriage return) get a leading apostrophe: account names, user paths and exception fields are
free text that the scanned organization controls.
"""

from __future__ import annotations

import csv
import io

from orgscan.model import AccountResult, Finding, ScanResult, UserKeys, iso
from orgscan.reports import view
from orgscan.reports.interface import Renderer

HEADER = (
    "account_id",
    "account_name",
    "ou_path",
    "user_name",
    "arn",
    "key_count",
    "active_key_count",
    "state",
    "exception_owner",
    "exception_expires",
    "exception_ticket",
    "account_scan_status",
    "error",
    "account_state",
    "rule_id",
    "severity",
    "resource_type",
    "resource_id",
    "access_key_id",
    "detail",
    "key_created_at",
    "key_last_used_at",
    "key_last_used_source",
    "key_last_used_as_of",
    "rules_incomplete",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | None


def neutralise(cell: str) -> str:
    """Make a spreadsheet read the cell as text, never as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _row(
    result: ScanResult,
    account: AccountResult | None,
    user: UserKeys | None,
    finding: Finding | None,
    account_id: str,
    user_name: str,
    arn: str,
) -> tuple[Cell, ...]:
    """One row: the user's columns (empty for the root), then the finding's, if any."""
    exception = finding and (finding.exception or finding.expired_exception)
    error = user.error if user else None
    key = None
    if finding is not None and finding.access_key_id is not None and user is not None:
        key = next((k for k in user.access_keys if k.id == finding.access_key_id), None)
    return (
        account_id,
        account.account.name if account else "",
        account.account.ou_path if account else "",
        user_name,
        arn,
        user.key_count if user else None,
        user.active_key_count if user else None,
        str(finding.state) if finding else str(view.user_state(None, user)),
        exception.owner if exception else "",
        exception.expires.isoformat() if exception else "",
        (exception.ticket or "") if exception else "",
        str(account.scan_status) if account else "",
        f"{error.code}: {error.message}" if error else "",
        account.account.state if account else "",
        finding.rule_id if finding else "",
        finding.severity if finding else "",
        str(finding.resource_type) if finding else "",
        finding.resource_id if finding else "",
        (finding.access_key_id or "") if finding else "",
        finding.detail if finding else "",
        (iso(key.created_at) or "") if key else "",
        (iso(key.last_used_at) or "") if key else "",
        (key.last_used_source or "") if key else "",
        (iso(key.last_used_as_of) or "") if key else "",
        ";".join(view.incomplete_rules(result, account)) if account else "",
    )


class CsvRenderer(Renderer):
    filename = "findings.csv"

    def render(self, result: ScanResult) -> bytes:
        accounts = view.accounts_by_id(result)
        findings = view.findings_by_user(result)
        users = {user.arn: user for user in result.users}
        rows: list[tuple[tuple[str, str, str], tuple[Cell, ...]]] = []
        for user in result.users:
            if user.arn not in findings:
                where = accounts.get(user.account_id)
                rows.append(
                    (
                        (user.account_id, user.user_name, user.arn),
                        _row(result, where, user, None, user.account_id, user.user_name, user.arn),
                    )
                )
        for arn, own in findings.items():
            for finding in own:
                where = accounts.get(finding.account_id)
                rows.append(
                    (
                        (finding.account_id, finding.user_name, arn),
                        _row(
                            result,
                            where,
                            users.get(arn),
                            finding,
                            finding.account_id,
                            finding.user_name,
                            arn,
                        ),
                    )
                )
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(HEADER)
        # By account, user and ARN as before; a user's findings in the run's rule order.
        for _, row in sorted(rows, key=lambda entry: entry[0]):
            writer.writerow([neutralise(c) if isinstance(c, str) else c for c in row])
        return buffer.getvalue().encode("utf-8")
