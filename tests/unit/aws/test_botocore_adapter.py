"""The botocore internals the wire and the factory rely on: checked against the pinned range."""

from __future__ import annotations

import botocore

from orgscan.aws import botocore_adapter


def test_the_installed_botocore_is_the_one_the_internals_were_read_against():
    assert botocore_adapter.check() == []


def test_a_botocore_outside_the_pinned_range_is_reported(monkeypatch):
    monkeypatch.setattr(botocore, "__version__", "1.41.0")
    assert botocore_adapter.check() == ["botocore 1.41.0 is outside (1, 40, 46)..(1, 40, 62)"]


def test_a_vanished_internal_is_reported(monkeypatch):
    monkeypatch.delattr(botocore_adapter.RetryHandler, "needs_retry")
    assert botocore_adapter.check() == ["RetryHandler.needs_retry is gone"]
