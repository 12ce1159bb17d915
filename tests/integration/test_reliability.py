"""Every scenario of the fault matrix: expected failures only, and not one user lost."""

from __future__ import annotations

import pytest

from tests.reliability import SCENARIOS, Scenario, run_scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_fault_matrix(moto_server, scenario: Scenario):
    row = await run_scenario(moto_server, scenario)
    assert row.failed_as_expected, row
    assert row.users_lost == 0, row
    assert row.accounts_scanned == row.accounts_expected
