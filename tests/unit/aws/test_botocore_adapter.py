"""The botocore internals the wire and the factory rely on: checked against the pinned range."""

from __future__ import annotations

import aioboto3
import botocore
from botocore.awsrequest import AWSResponse

from orgscan.aws import botocore_adapter


def test_the_installed_botocore_is_the_one_the_internals_were_read_against():
    assert botocore_adapter.check() == []


def test_a_botocore_outside_the_pinned_range_is_reported(monkeypatch):
    monkeypatch.setattr(botocore, "__version__", "1.41.0")
    assert botocore_adapter.check() == ["botocore 1.41.0 is outside (1, 40, 46)..(1, 40, 62)"]


def test_a_vanished_internal_is_reported(monkeypatch):
    monkeypatch.delattr(botocore_adapter.RetryHandler, "needs_retry")
    assert botocore_adapter.check() == ["RetryHandler.needs_retry is gone"]


async def test_the_retry_quota_replaces_aiobotocores_own_handler(monkeypatch):
    """Left registered, aiobotocore's handler would still answer needs-retry from the client's
    one shared quota, whatever the account's own says."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    asked = []

    class Quota:
        def acquire_retry_quota(self, context):
            asked.append(context)
            return False

        def release_retry_quota(self, context, http_response, **kwargs):
            pass

    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("iam") as client:
        botocore_adapter.use_retry_quota(client, 3, Quota())
        operation = client.meta.service_model.operation_model("UpdateAccessKey")
        throttled = (
            AWSResponse("https://iam.amazonaws.com/", 400, {}, None),
            {"Error": {"Code": "Throttling"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        )
        answers = await client.meta.events.emit(
            "needs-retry.iam.UpdateAccessKey",
            response=throttled,
            endpoint=None,
            operation=operation,
            attempts=1,
            caught_exception=None,
            request_dict={"context": {}},
        )
    assert [answer for _, answer in answers] == [None]
    assert len(asked) == 1
