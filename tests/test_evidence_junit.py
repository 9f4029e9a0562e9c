"""JUnit rendering: golden files, the strict file against the Jenkins xunit plugin's current
junit-10.xsd, the rich file read back with junitparser (EnricoMi's publisher parses with it) and
checked for what each consumer reads (README "In CI"), and junit-xml's known bugs kept out."""

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


@pytest.fixture(scope="module")
def strict_text() -> str:
    return junit.render(sample_record(), strict=True)


def test_matches_golden_files(xml_text: str, strict_text: str) -> None:
    golden("sample.junit.xml", xml_text)
    golden("sample.junit-xunit.xml", strict_text)


def test_strict_file_valid_against_jenkins_xsd(strict_text: str,
                                               schema: xmlschema.XMLSchema) -> None:
    schema.validate(strict_text)


def test_rich_file_differs_from_strict_only_where_the_xsd_refuses(xml_text: str,
                                                                  strict_text: str) -> None:
    def stripped(source: str) -> str:
        root = ET.fromstring(source.encode())
        for case in root.iter("testcase"):
            case.attrib.pop("file", None)
            case.attrib.pop("line", None)
            for props in case.findall("properties"):
                case.remove(props)
        return ET.tostring(root, "unicode")

    assert stripped(xml_text) == stripped(strict_text)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xmlschema.XMLSchema(str(XSD)).validate(xml_text)


def test_schema_file_is_the_current_jenkins_junit_10() -> None:
    schema = XSD.read_text()
    assert 'name="SUREFIRE_TIME"' in schema
    assert r"(\.[0-9]{0,3})?" in schema  # times limited to 3 decimals
    assert '<xs:attribute name="version" type="xs:string"/>' in schema  # testsuite@version


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
    assert (desktop.classname, desktop._elem.get("file")) == ("choirci.closures",
                                                              "desktop/flake.nix")
    health = next(iter(suites["rust"]))
    assert health.classname == "rust.sandbox.desktop_api_test"  # Jenkins package: rust.sandbox


def test_provenance_suite_properties_and_item_properties(xml_text: str) -> None:
    root = ET.fromstring(xml_text.encode())
    closures = root.find("testsuite[@name='closures']")
    assert closures is not None
    props = {p.get("name"): p.get("value") for p in closures.findall("properties/property")}
    assert props["commit"].startswith("1dcaf0a")
    assert props["dirty"] == "false" and props["domain"] == "os.choir.chat"
    assert props["nix_version"] == "2.18.1" and props["choirci_version"] == "0.1.0"
    # Run provenance once: only the first suite carries it.
    assert [s.get("name") for s in root.iter("testsuite") if s.find("properties") is not None] \
        == ["closures"]
    # Jenkins (keepProperties) and junitparser read testcase properties ...
    case = closures.find("testcase[@name='sandbox']")
    assert case is not None
    case_props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
    assert case_props["drv_path"] == "/nix/store/aaaa-sandbox.drv"
    assert case_props["cache"] == "present"
    # ... every consumer that shows output reads it as text; nobody parses [[PROPERTY|..]].
    out = case.find("system-out")
    assert out is not None and (out.text or "").splitlines()[:2] == [
        "choirci: closures::sandbox", "  installable: ./sandbox#sandbox"]
    assert "  drv_path: /nix/store/aaaa-sandbox.drv" in (out.text or "").splitlines()
    assert "[[PROPERTY" not in xml_text


def test_root_time_is_wall_time_not_the_sum_of_items(xml_text: str) -> None:
    record = sample_record()
    root = ET.fromstring(xml_text.encode())
    assert float(root.get("time", "0")) == pytest.approx(junit.wall_time(record), abs=1e-3)
    assert junit.wall_time(record) != pytest.approx(sum(i.duration for i in record.items))


def test_skip_reason_is_the_element_text_too(xml_text: str) -> None:
    """GitLab shows a skip reason from the <skipped> element's text, not its message."""
    root = ET.fromstring(xml_text.encode())
    skipped = root.find(".//testcase[@name='test_skipped']/skipped")
    assert skipped is not None
    assert skipped.get("message") == "Skipped: no docker"
    assert (skipped.text or "").startswith("Skipped: no docker")
    deselected = root.find(".//testcase[@name='test_deselected']/skipped")
    assert deselected is not None and (deselected.text or "").startswith("deselected")
    assert skipped.get("type") is None  # no "skipped" noise (dorny prints type: message)


def test_rust_failure_points_at_the_panic_line_relative_to_the_repo() -> None:
    failing = item("rust::sandbox::desktop_api_test::test_x", "rust", "sandbox.desktop_api_test",
                   "test_x", "failed", message="panicked",
                   details="thread 'test_x' panicked at tests/desktop_api_test.rs:27:5:\n"
                           "assertion failed: 1 < 0 & é \x1b[31mred\x1b[0m",
                   properties=(("rust.source_root", "sandbox"),))
    root = ET.fromstring(junit.render(RunRecord(runs=(run(items=(failing,)),))).encode())
    case = root.find(".//testcase")
    assert case is not None
    assert (case.get("file"), case.get("line")) == ("sandbox/tests/desktop_api_test.rs", "27")
    failure = case.find("failure")
    assert failure is not None and "1 < 0 & é red" in (failure.text or "")


def test_placeholders_have_readable_stable_names() -> None:
    placeholder = item("rust::sandbox::desktop_api_test::*", "rust", "sandbox.desktop_api_test",
                       "*", "deselected", message="not selected (--closure)")
    root = ET.fromstring(junit.render(RunRecord(runs=(run(items=(placeholder,)),))).encode())
    case = root.find(".//testcase")
    assert case is not None
    assert (case.get("classname"), case.get("name")) == ("rust.sandbox.desktop_api_test",
                                                         "desktop_api_test (all tests)")


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
    schema.validate(junit.render(record, strict=True))


def test_repeated_property_names_survive(schema: xmlschema.XMLSchema) -> None:
    """junit-xml keeps suite properties in a dict; two shards' commits must both appear."""
    record = RunRecord(runs=(run(shard="a", commit="a" * 40, items=(host_check("t", "g"),)),
                             run(shard="b", commit="b" * 40, items=(host_check("t", "h"),))))
    root = ET.fromstring(junit.render(record).encode())
    suite = root.find("testsuite")
    assert suite is not None
    commits = [p.get("value") for p in suite.iter("property") if p.get("name") == "commit"]
    assert commits == ["a" * 40, "b" * 40]


def test_no_attribute_the_xsd_refuses(strict_text: str) -> None:
    root = ET.fromstring(strict_text.encode())
    assert set(root.attrib) <= {"name", "time", "tests", "failures", "errors"}
    for suite in root.iter("testsuite"):
        assert "disabled" not in suite.attrib
    for case in root.iter("testcase"):
        assert set(case.attrib) <= {"name", "time", "classname", "group"}


def test_every_failure_and_error_has_a_message_and_a_type_only_when_it_names_one(
        xml_text: str) -> None:
    root = ET.fromstring(xml_text.encode())
    bad = [*root.iter("failure"), *root.iter("error")]
    assert len(bad) == 3  # desktop failed, prod unreachable, one missing result
    assert all(el.get("message") for el in bad)
    assert {el.get("type") for el in bad} == {"NixBuildFailed", "HostUnreachable", None}


def test_empty_record_is_still_valid(schema: xmlschema.XMLSchema) -> None:
    schema.validate(junit.render(RunRecord(), strict=True))
