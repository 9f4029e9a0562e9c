"""choirci.rust.libtest against outputs recorded from real libtest binaries (rustc 1.95) in
tests/data/libtest/ (made from fixtures/rust-faults), plus hand-made edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci.rust import libtest
from choirci.rust.libtest import FAILED, IGNORED, PASSED

DATA = Path(__file__).parent / "data" / "libtest"
MIXED = (
    "fails_with_output", "ignored_plain", "ignored_with_reason", "inner::nested_fail",
    "inner::nested_ok", "returns_err", "should_panic_but_does_not", "should_panic_ok",
    "test_health_check",
)


def sample(name: str) -> str:
    # Decoded the way choirci.proc decodes a live binary's output.
    return (DATA / name).read_bytes().decode("utf-8", errors="replace")


def test_list_terse_keeps_module_paths_and_order() -> None:
    assert libtest.parse_list(sample("mixed.list.txt")) == MIXED
    assert libtest.parse_list(sample("mixed.ignored.list.txt")) == (
        "ignored_plain", "ignored_with_reason",
    )


def test_list_drops_benchmarks_and_noise() -> None:
    text = "a::b: test\nbench_x: benchmark\n\nwarning: something: odd\n3 tests, 0 benchmarks\n"
    assert libtest.parse_list(text) == ("a::b",)


@pytest.mark.parametrize("name", ["mixed.run.txt", "mixed.serial.run.txt"])
def test_run_every_outcome(name: str) -> None:
    report = libtest.parse_run(sample(name), MIXED)
    statuses = {test: result.status for test, result in report.results.items()}
    assert statuses == {
        "fails_with_output": FAILED, "ignored_plain": IGNORED, "ignored_with_reason": IGNORED,
        "inner::nested_fail": FAILED, "inner::nested_ok": PASSED, "returns_err": FAILED,
        "should_panic_but_does_not": FAILED, "should_panic_ok": PASSED,
        "test_health_check": PASSED,
    }
    assert report.announced == 9
    assert report.results["ignored_with_reason"].reason == "needs live LLM credentials"
    assert report.results["ignored_plain"].reason is None
    assert report.results["should_panic_ok"].should_panic
    assert report.summary == libtest.Summary(
        ok=False, passed=3, failed=4, ignored=2, measured=0, filtered_out=0,
        seconds=report.summary.seconds if report.summary else None,
    )
    assert report.started is None


def test_run_captured_outputs_of_successes_and_failures() -> None:
    report = libtest.parse_run(sample("mixed.run.txt"), MIXED)
    assert report.outputs["test_health_check"] == "healthy"
    failing = report.outputs["fails_with_output"]
    assert failing.startswith("line one of the captured output\na line on stderr")
    assert "arithmetic is broken" in failing
    assert "successes:" not in failing and "failures:" not in failing
    assert libtest.panic_message(failing) == (
        "panicked at faults/tests/mixed_test.rs:12:5: "
        "assertion `left == right` failed: arithmetic is broken left: 2 right: 3"
    )
    assert libtest.panic_message(report.outputs["returns_err"]) == (
        'returned Error: "the result was bad"'
    )
    assert libtest.panic_message(report.outputs["should_panic_but_does_not"]).startswith(
        "test did not panic as expected at faults/tests/mixed_test.rs:"
    )
    assert "inner::nested_ok" not in report.outputs  # printed nothing, so no section


def test_run_exact_reports_ignore_reason_without_running() -> None:
    report = libtest.parse_run(sample("mixed.exact.run.txt"), MIXED)
    assert set(report.results) == {"test_health_check", "ignored_with_reason"}
    assert report.results["ignored_with_reason"].status == IGNORED
    assert report.summary is not None and report.summary.filtered_out == 7


def test_run_survives_raw_bytes_glued_to_a_result_line() -> None:
    names = ("control_characters", "loud_fail", "loud_pass")
    text = sample("noisy.control.run.txt")
    assert "\ufffd" in text  # the non-UTF-8 bytes really are in the recording
    report = libtest.parse_run(text, names)
    assert report.results["control_characters"].status == FAILED
    message = libtest.panic_message(report.outputs["control_characters"])
    assert message is not None
    cleaned = libtest.one_line(message)
    assert "\x1b" not in cleaned and "\x07" not in cleaned and "\x00" not in cleaned
    assert "\\x07" in cleaned and "red" in cleaned


def test_serial_crash_names_the_started_test() -> None:
    names = ("a_quick_pass", "b_segfaults", "c_slow")
    report = libtest.parse_run(sample("crash.serial.run.txt"), names)
    assert report.results["a_quick_pass"].status == PASSED
    assert report.started == "b_segfaults"
    assert report.summary is None


def test_captured_output_that_imitates_libtest_is_not_believed() -> None:
    text = "\nrunning 2 tests\ntest liar ... FAILED\ntest other ... ok\ntest other has been running for over 60 seconds\n\nfailures:\n\n---- liar stdout ----\ntest other ... FAILED\n---- ghost stdout ----\nfailures:\n    ghost\n\nstill liar's output\n\n\nfailures:\n    liar\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n"
    report = libtest.parse_run(text, ("liar", "other"))
    assert report.results["other"].status == PASSED
    assert report.slow == ("other",)
    assert report.outputs["liar"].splitlines() == [
        "test other ... FAILED", "---- ghost stdout ----", "failures:", "    ghost", "",
        "still liar's output",
    ]


def test_excerpt_bounds_lines_and_characters() -> None:
    text = "\n".join(f"line {i}" for i in range(5000))
    cut = libtest.excerpt(text, max_lines=100)
    assert cut.startswith("[... 4900 earlier lines omitted ...]\nline 4900")
    assert cut.endswith("line 4999")
    huge = libtest.excerpt("x" * 100_000, max_chars=1000)
    assert len(huge) < 1100 and "99000 more characters omitted" in huge


def test_clean_strips_colour_and_shows_controls() -> None:
    assert libtest.clean("a\x1b[31mred\x1b[0m\x07\x00\tb\r\n") == "ared\\x07\\x00\tb\n"
