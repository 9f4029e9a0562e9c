"""The ``rust:`` section of choirci.yaml: the keys the rust area added, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci import config
from choirci.errors import ConfigError


def load(tmp_path: Path, text: str) -> config.RustSettings:
    path = tmp_path / "choirci.yaml"
    path.write_text(text)
    return config.load(path).rust


def test_rust_keys_are_typed_with_defaults(tmp_path: Path) -> None:
    rust = load(tmp_path, "rust:\n  targets:\n    - {crate: sandbox, test: lib}\n")
    assert (rust.timeout, rust.build_timeout, rust.test_threads) == (300.0, 3600.0, None)
    rust = load(tmp_path, "rust:\n  build_timeout: 60\n  test_threads: 1\n  timeout: 2.5\n")
    assert (rust.timeout, rust.build_timeout, rust.test_threads) == (2.5, 60.0, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rust:\n  test_threads: 0\n",
         "choirci.yaml:2: rust.test_threads: expected a whole number >= 1, got 0"),
        ("rust:\n  test_threads: 1.5\n",
         "choirci.yaml:2: rust.test_threads: expected a whole number >= 1, got 1.5"),
        ("rust:\n  build_timeout: -1\n",
         "choirci.yaml:2: rust.build_timeout: expected a positive number of seconds, got -1"),
        ("rust:\n  test_thread: 1\n",
         "choirci.yaml:2: rust.test_thread: unknown key (did you mean 'test_threads'?)"),
    ],
)
def test_rust_key_errors_are_one_line_with_location(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path}/{message}")
