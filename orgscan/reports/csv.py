"""`findings.csv`: one row per IAM user, passing or not, for spreadsheets.

UTF-8 without a byte-order mark, RFC 4180 quoting and CRLF line ends, rows sorted by account
id, user name and ARN. The header is `HEADER`; columns are only ever added at the end.

`state` is `pass`, `open`, `excepted` or `error`; `account_state` is the account's lifecycle
state in the organization (ACTIVE, or PENDING_CLOSURE for a closing account whose keys still
work). The exception columns name the approval that excepts the user; for an `open` user whose
approval expired they name that lapsed approval, so the state column is the one that says
whether an exception applies.

A user whose keys could not be read has the state `error`, empty counts and its AWS error in
`error`; `account_scan_status` (`scanned` or `partial`) lets a spreadsheet count the users of
partly scanned accounts apart.

Cells that a spreadsheet would run as a formula (first character `=`, `+`, `-`, `@`, tab or
carriage return) get a leading apostrophe: account names, user paths and exception fields are
free text that the scanned organization controls.
"""

from __future__ import annotations

import csv
import io

from orgscan.model import ScanResult
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
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """Make a spreadsheet read the cell as text, never as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


class CsvRenderer(Renderer):
    filename = "findings.csv"

    def render(self, result: ScanResult) -> bytes:
        accounts = view.accounts_by_id(result)
        findings = view.findings_by_arn(result)
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(HEADER)
        for user in view.sorted_users(result):
            account = accounts.get(user.account_id)
            finding = findings.get(user.arn)
            exception = finding and (finding.exception or finding.expired_exception)
            error = user.error
            row: tuple[str | int | None, ...] = (
                user.account_id,
                account.account.name if account else "",
                account.account.ou_path if account else "",
                user.user_name,
                user.arn,
                user.key_count,
                user.active_key_count,
                str(view.user_state(finding, user)),
                exception.owner if exception else "",
                exception.expires.isoformat() if exception else "",
                (exception.ticket or "") if exception else "",
                str(account.scan_status) if account else "",
                f"{error.code}: {error.message}" if error else "",
                account.account.state if account else "",
            )
            writer.writerow([neutralise(c) if isinstance(c, str) else c for c in row])
        return buffer.getvalue().encode("utf-8")
