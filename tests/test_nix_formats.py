"""Parsers of nix output, against recorded (2.8) and documented (2.19+) samples in tests/data/nix."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci.nix.formats import (
    DEPENDENCY_FAILED,
    UNEXPLAINED,
    Features,
    missing_attribute,
    parse_build_json,
    parse_building,
    parse_copies,
    parse_drv_closure,
    parse_failures,
    parse_path_info,
    parse_plan,
    parse_version,
    unknown_command,
)
from choirci.nix.hashes import FormatError, normalize_hash, sri

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


def test_features_default_to_the_current_cli() -> None:
    assert Features().derivation_show


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


VENDOR = "/nix/store/ifhw603dnflxphmcpv11wx6c23k9vpxl-vendor.drv"
APP = "/nix/store/6jdgz01g43an3mwsm9pmpawz5r4fik6f-app.drv"
GOT = "sha256-v1vvgjjTCCURCSYvUnLWTJwds2iPAiLWBuI1Vscfp7E="


@pytest.mark.parametrize("name", ["build-fod-mismatch-2.8.stderr",
                                  "build-fod-mismatch-2.26.stderr"])
def test_failures_fixed_output_hash_mismatch(name: str) -> None:
    failures = parse_failures(sample(name))
    assert failures[VENDOR].reason == (
        "failed: hash mismatch in fixed-output derivation (specified "
        f"sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=, got {GOT}; if the new content "
        f"is expected, pin {GOT})")
    assert failures[APP].reason == DEPENDENCY_FAILED


def test_failures_multi_path_summary_without_output_selector() -> None:
    text = ("error: build of '/nix/store/s9xnzliai00x5d0hbsawlyw34dxby5hs-bad.drv^out', "
            "'/nix/store/frm0gx4aifq2pri675spw1ly41f803hy-top.drv^out,dev' failed\n")
    failures = parse_failures(text)
    assert set(failures) == {"/nix/store/s9xnzliai00x5d0hbsawlyw34dxby5hs-bad.drv",
                             "/nix/store/frm0gx4aifq2pri675spw1ly41f803hy-top.drv"}
    assert {f.reason for f in failures.values()} == {UNEXPLAINED}


def test_failures_summary_never_overrides_an_explained_failure() -> None:
    (failure,) = parse_failures(sample("build-failed-2.24.stderr") + (
        "error: build of '/nix/store/s9xnzliai00x5d0hbsawlyw34dxby5hs-bad.drv^out' failed\n"
    )).values()
    assert failure.reason == "failed with exit code 3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `nix store verify` / older path-info print base-32; manifests keep SRI.
        ("sha256:1c2p7z1pc8k7z1gg4nl5vq3j8w4x0ka5jw2yz2j3pvpjqwqyf4d9",
         "sha256-qRHnMcfy7juk+F5wWdQEnXAkB96FWvJe+GcidsM/V7A="),
        ("sha256:bf5bef8238d308251109262f5272d64c9c1db3688f0222d606e23556c71fa7b1", GOT),
        (GOT, GOT),
        ("sha256:not-a-hash", "sha256:not-a-hash"),
        ("sha256:" + "e" * 51 + "!", "sha256:" + "e" * 51 + "!"),
    ],
)
def test_sri(text: str, expected: str) -> None:
    assert sri(text) == expected
    assert normalize_hash(text) == expected


def test_unknown_command() -> None:
    assert unknown_command("error: 'derivation' is not a recognised command\nTry 'nix --help'")
    assert not unknown_command("error: path '/nix/store/x.drv' is not valid")


# --------------------------------------------------------------------------- Nix 2.26 (Debian 13)
# Recorded in the trixie root (scripts/trixie-root): the 2.2x wording, next to the 2.8 one.


def test_version_2_26() -> None:
    assert str(parse_version(sample("version-2.26.txt"))) == "2.26.3"


def test_failures_2_26_keep_going() -> None:
    failures = parse_failures(sample("build-keep-going-failed-2.26.stderr"))
    assert {drv.split("-", 1)[1]: f.reason for drv, f in failures.items()} == {
        "dep-bad.drv": "failed with exit code 4",
        "bad.drv": "failed with exit code 3",
        "top.drv": DEPENDENCY_FAILED,
    }
    assert all("^" not in drv for drv in failures)
    assert len(parse_building(sample("build-keep-going-failed-2.26.stderr"))) == 2


def test_dry_run_2_26() -> None:
    built = parse_build_json(sample("build-dry-run-2.26.json"))
    assert [b.drv_path.rsplit("-", 1)[1] for b in built] == ["good.drv", "bad.drv"]
    plan = parse_plan(sample("build-dry-run-2.26.stderr"))
    assert plan.will_build == {"/nix/store/z1d3y1ydmac0g5fhqf01qmd67ppnimi0-bad.drv"}


def test_path_info_2_26_object_keyed_by_path() -> None:
    info = parse_path_info(sample("path-info-2.26.json"))
    good = info["/nix/store/vv63h6fvyjzibwk927xc9hbcx5sjylgj-good"]
    assert info[BAD] is None
    assert good is not None and good.ultimate and good.closure_size == 120
    assert good.nar_hash == "sha256-p0A7nrLYsu0ckfAWY4rrL6QEr+LQWgxVwOZ4ExZzZ68="
