"""Each new output format checked against its standard's own model or schema; shared by the
renderer tests, the demo test and the hostile-input test."""

from __future__ import annotations

import json
from typing import Any

from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding
from py_ocsf_models.objects.cloud import Cloud


def ocsf_events(data: bytes) -> list[dict[str, Any]]:
    """Every line a Compliance Finding (class 2003) that py-ocsf-models accepts, with a cloud
    profile object it accepts too; the parsed events."""
    text = data.decode("ascii")  # ASCII only: no line separator hides inside a name
    assert text == "" or text.endswith("\n")
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        ComplianceFinding.model_validate(event)
        Cloud.model_validate(event["cloud"])
        assert (event["class_uid"], event["category_uid"]) == (2003, 2)
        assert event["type_uid"] == 200300 + event["activity_id"]
        assert "cloud" in event["metadata"]["profiles"]
    return events
