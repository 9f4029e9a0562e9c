"""Parsers of nix output, against recorded (2.8) and documented (2.19+) samples in tests/data/nix."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci.nix.formats import (
    DEPENDENCY_FAILED,
    Features,
    FormatError,
    NixVersion,
    missing_attribute,
    normalize_hash,
    parse_build_json,
    parse_building,
    parse_copies,
    parse_drv_closure,
    parse_failures,
    parse_path_info,
    parse_plan,
    parse_version,
)

DATA = Path(__file__).parent / "data" / "nix"
GOOD = "/nix/store/fdzc12h2gry2hisfi0q1dcvgmsgw9lcb-good"
BAD = "/nix/store/r585li6w7fb94ya6a6wvym9rx05bsgpw-bad"
GOOD_HASH = "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY="


def sample(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("text", "expected", "lix"),
    [
        (sample("version-2.8.txt"), (2, 8, 0), False),
        (sample("version-determinate.txt"), (2, 29, 0), False),
        (sample("version-lix.txt"), (2, 91, 1), True),
        ("nix (Nix) 2.24.0pre20240801_dirty\n", (2, 24, 0), False),
        ("nix (Nix) 2.3\n", (2, 3, 0), False),
    ],
)
def test_version(text: str, expected: tuple[int, int, int], lix: bool) -> None:
    version = parse_version(text)
    assert (version.major, version.minor, version.patch) == expected
    assert version.lix is lix
    assert str(version) == ".".join(map(str, expected))


def test_version_garbage_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="cannot read a version"):
        parse_version("command not found\n")


@pytest.mark.parametrize(
    ("version", "print_out_paths", "path_info_object", "derivation_show"),
    [
        (NixVersion(2, 8), False, False, False),
        (NixVersion(2, 9), True, False, False),
        (NixVersion(2, 15), True, False, True),
        (NixVersion(2, 19), True, True, True),
        (NixVersion(2, 91, lix=True), True, False, True),
    ],
)
def test_features(version: NixVersion, print_out_paths: bool, path_info_object: bool,
                  derivation_show: bool) -> None:
    features = Features.of(version)
    assert (features.print_out_paths, features.path_info_object, features.derivation_show) == (
        print_out_paths, path_info_object, derivation_show)


def test_build_json_2_8() -> None:
    built = parse_build_json(sample("build-2.8.json"))
    assert [b.drv_path.rsplit("-", 1)[-1] for b in built] == ["good.drv", "multi.drv"]
    assert built[0].outputs == {"out": GOOD}
    assert built[0].start_time is None


def test_build_json_failed_2_8_prints_nothing() -> None:
    assert sample("build-keep-going-failed-2.8.json") == ""
    assert parse_build_json(sample("build-keep-going-failed-2.8.json")) == []


def test_build_json_2_19_times_and_outputs() -> None:
    good, multi = parse_build_json(sample("build-2.19.json"))
    assert (good.start_time, good.stop_time) == (1732370000, 1732370042)
    assert set(multi.outputs) == {"dev", "out"}


def test_dry_run_json_has_paths_for_every_installable() -> None:
    entries = parse_build_json(sample("build-dry-run-2.8.json"))
    assert len(entries) == 3
    assert all(e.outputs["out"] for e in entries)


@pytest.mark.parametrize("text", ["{}", '[{"outputs": {}}]', "not json"])
def test_build_json_malformed(text: str) -> None:
    with pytest.raises(FormatError):
        parse_build_json(text)


@pytest.mark.parametrize("name", ["path-info-2.8.json", "path-info-2.19.json", "path-info-newest.json"])
def test_path_info_every_shape(name: str) -> None:
    info = parse_path_info(sample(name))
    assert info[BAD] is None
    good = info[GOOD]
    assert good is not None
    assert good.nar_hash == GOOD_HASH
    assert (good.nar_size, good.closure_size) == (120, 120)
    assert good.deriver == "/nix/store/mfdb1h2221ad3kpc11afyvgl8ykzxdj1-good.drv"


def test_path_info_substituted_is_not_ultimate() -> None:
    built = parse_path_info(sample("path-info-2.8.json"))[GOOD]
    fetched = parse_path_info(sample("path-info-substituted-2.8.json"))[GOOD]
    assert built is not None and built.ultimate
    assert fetched is not None and not fetched.ultimate


def test_path_info_newest_signatures() -> None:
    good = parse_path_info(sample("path-info-newest.json"))[GOOD]
    assert good is not None and good.signatures == ("cache.example.org-1:AAAA",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (GOOD_HASH, GOOD_HASH),
        ({"algorithm": "sha256", "format": "base64", "hash": "AAAA"}, "sha256-AAAA"),
        ({"algorithm": "sha256", "format": "base16", "hash": "00ff"}, "sha256-AP8="),
        ({"algorithm": "sha256", "format": "nix32", "hash": "0abc"}, "sha256:0abc"),
    ],
)
def test_normalize_hash(value: object, expected: str) -> None:
    assert normalize_hash(value) == expected


def test_plan_dry_run_build() -> None:
    plan = parse_plan(sample("build-dry-run-2.8.stderr"))
    assert len(plan.will_build) == 3 and not plan.will_fetch
    assert all(p.endswith(".drv") for p in plan.will_build)


def test_plan_dry_run_fetch() -> None:
    plan = parse_plan(sample("build-dry-run-substitutable-2.8.stderr"))
    assert plan.will_fetch == {GOOD} and not plan.will_build


def test_plan_ignores_log_lines_after_the_list() -> None:
    text = "this derivation will be built:\n  /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv\nx>   /not/a/plan\n"
    assert parse_plan(text).will_build == {"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv"}


def test_copies_name_the_cache() -> None:
    assert parse_copies(sample("build-substituted-2.8.stderr")) == {GOOD: "file:///tmp/p7x/cache2"}
    assert parse_building(sample("build-substituted-2.8.stderr")) == frozenset()


def test_failures_2_8() -> None:
    failures = parse_failures(sample("build-keep-going-failed-2.8.stderr"))
    (failure,) = failures.values()
    assert failure.drv_path.endswith("-bad.drv")
    assert failure.reason == "failed with exit code 3"
    assert len(parse_building(sample("build-keep-going-failed-2.8.stderr"))) == 3


@pytest.mark.parametrize("name", ["build-dependency-failed-2.8.stderr", "build-failed-2.28.stderr"])
def test_failures_dependency(name: str) -> None:
    failures = parse_failures(sample(name))
    dep = failures["/nix/store/5v7lnazvp7bcm0ik1nsy6j8fip570f5s-dep-bad.drv"]
    top = failures["/nix/store/frm0gx4aifq2pri675spw1ly41f803hy-top.drv"]
    assert dep.reason == "failed with exit code 4"
    assert top.reason == DEPENDENCY_FAILED


def test_failures_2_24_semicolon() -> None:
    (failure,) = parse_failures(sample("build-failed-2.24.stderr")).values()
    assert failure.reason == "failed with exit code 3"


def test_failures_none_when_nix_blames_nobody() -> None:
    text = "error: home directory '/homeless-shelter' exists; please remove it\n"
    assert parse_failures(text) == {}


def test_missing_attribute() -> None:
    assert missing_attribute(sample("eval-missing-attribute-2.8.stderr")) == "packages.x86_64-linux.nope"
    assert missing_attribute("error: syntax error, unexpected '}'") is None


def test_drv_closure_both_shapes() -> None:
    old = '{"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv": {}, "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.drv": {}}'
    new = '{"version": 4, "derivations": {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv": {}}}'
    assert len(parse_drv_closure(old)) == 2
    assert parse_drv_closure(new) == {"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv"}
