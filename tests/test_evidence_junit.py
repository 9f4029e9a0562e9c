"""JUnit rendering: golden file, Jenkins' junit-10.xsd, read back with junitparser, and
each of junit-xml's known bugs kept out of the file."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
import xmlschema
from evidence_sample import XSD, golden, host_check, item, run, sample_record

from choirci.evidence import junit
from choirci.evidence.record import RunRecord


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


@pytest.fixture(scope="module")
def xml_text() -> str:
    return junit.render(sample_record())


def test_matches_golden_file(xml_text: str) -> None:
    golden("sample.junit.xml", xml_text)


def test_valid_against_jenkins_xsd(xml_text: str, schema: xmlschema.XMLSchema) -> None:
    schema.validate(xml_text)


def test_schema_file_is_jenkins_junit_10() -> None:
    assert 'name="SUREFIRE_TIME"' in XSD.read_text()


def test_read_back_with_junitparser(xml_text: str, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(xml_text)
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["closures", "loops", "rust", "release", "hosts.grind",
                            "hosts.prod", "python"]
    assert suites["hosts.prod"].hostname == "prod"
    assert (suites["closures"].tests, suites["closures"].failures) == (3, 1)
    assert suites["hosts.prod"].errors == 1
    desktop = next(case for case in suites["closures"] if case.name == "desktop")
    failure = desktop.result[0]
    assert isinstance(failure, junitparser.Failure)
    assert (failure.message, failure.type) == ("nix build failed: exit status 1", "NixBuildFailed")
    health = next(iter(suites["rust"]))
    assert health.classname == "sandbox.desktop_api_test"


def test_provenance_suite_properties_and_item_properties(xml_text: str) -> None:
    root = ET.fromstring(xml_text.encode())
    closures = root.find("testsuite[@name='closures']")
    assert closures is not None
    props = {p.get("name"): p.get("value") for p in closures.iter("property")}
    assert props["commit"].startswith("1dcaf0a")
    assert props["dirty"] == "false" and props["domain"] == "os.choir.chat"
    assert props["nix_version"] == "2.18.1" and props["choirci_version"] == "0.1.0"
    out = closures.find("testcase[@name='sandbox']/system-out")
    assert out is not None and "[[PROPERTY|cache=present]]" in (out.text or "")
    assert "[[PROPERTY|drv_path=/nix/store/aaaa-sandbox.drv]]" in (out.text or "")


def test_times_never_in_exponent_form(xml_text: str) -> None:
    times = re.findall(r'time="([^"]*)"', xml_text)
    assert times and all(re.fullmatch(r"\d+\.\d{3}", t) for t in times), times


def test_control_characters_and_ansi_are_stripped(xml_text: str) -> None:
    assert "\x1b" not in xml_text and "\x07" not in xml_text and "\x00" not in xml_text
    assert "red bell nul cdata ]]&gt; end" in xml_text  # escaped, never a raw CDATA end


def test_long_log_is_cut_with_a_pointer_to_the_full_log(xml_text: str) -> None:
    assert "characters cut; full log: nix log /nix/store/aaaa-desktop.drv" in xml_text
    assert "last line of the log" in xml_text  # the tail (how it died) is kept
    assert len(xml_text) < 60_000


def test_classname_and_name_are_unique_even_for_duplicates(schema: xmlschema.XMLSchema) -> None:
    same = item("tests/t.py::test_a", "python", "tests.t", "test_a")
    record = RunRecord(runs=(run(shard="a", items=(same,)), run(shard="b", items=(same,)),
                             run(shard="c", items=(same, same))))
    root = ET.fromstring(junit.render(record).encode())
    pairs = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert len(pairs) == len(set(pairs)) == 4
    schema.validate(junit.render(record))


def test_repeated_property_names_survive(schema: xmlschema.XMLSchema) -> None:
    """junit-xml keeps suite properties in a dict; two shards' commits must both appear."""
    record = RunRecord(runs=(run(shard="a", commit="a" * 40, items=(host_check("t", "g"),)),
                             run(shard="b", commit="b" * 40, items=(host_check("t", "h"),))))
    root = ET.fromstring(junit.render(record).encode())
    suite = root.find("testsuite")
    assert suite is not None
    commits = [p.get("value") for p in suite.iter("property") if p.get("name") == "commit"]
    assert commits == ["a" * 40, "b" * 40]


def test_no_attribute_the_xsd_refuses(xml_text: str) -> None:
    root = ET.fromstring(xml_text.encode())
    assert set(root.attrib) <= {"name", "time", "tests", "failures", "errors"}
    for suite in root.iter("testsuite"):
        assert "disabled" not in suite.attrib
    for case in root.iter("testcase"):
        assert set(case.attrib) <= {"name", "time", "classname", "group"}


def test_every_failure_and_error_has_message_and_type(xml_text: str) -> None:
    root = ET.fromstring(xml_text.encode())
    bad = [*root.iter("failure"), *root.iter("error")]
    assert len(bad) == 3  # desktop failed, prod unreachable, one missing result
    assert all(el.get("message") and el.get("type") for el in bad)


def test_empty_record_is_still_valid(schema: xmlschema.XMLSchema) -> None:
    schema.validate(junit.render(RunRecord()))
