"""The ``rust:`` section of choirci.yaml: the keys the rust area added, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci import config
from choirci.config.rust import RustSettings
from choirci.errors import ConfigError


def load(tmp_path: Path, text: str) -> RustSettings:
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


def crate_dir(tmp_path: Path, name: str = "desktop") -> Path:
    (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / name / "Cargo.toml").write_text(f'[package]\nname = "{name}"\n')
    return tmp_path / name


def test_manifest_is_resolved_against_the_config_file(tmp_path: Path) -> None:
    crate_dir(tmp_path)
    rust = load(tmp_path, "rust:\n  targets:\n"
                          "    - {crate: desktop, test: lib, manifest: desktop/Cargo.toml}\n"
                          "    - {crate: desktop, test: desktop, manifest: ./desktop/Cargo.toml}\n"
                          "    - {crate: sandbox, test: lib}\n")
    assert [t.manifest for t in rust.targets] == [
        (tmp_path / "desktop/Cargo.toml").resolve()] * 2 + [None]
    assert rust.targets[0].id == "desktop::lib"  # node ids do not change


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("desktp/Cargo.toml",
         "choirci.yaml:5: rust.targets[0].manifest: no such file 'desktp/Cargo.toml' (looked for "),
        ("desktop",
         "choirci.yaml:5: rust.targets[0].manifest: 'desktop' is a directory; give its Cargo.toml"),
        ("desktop/Cargo.lock",
         "choirci.yaml:5: rust.targets[0].manifest: 'desktop/Cargo.lock' is not a Cargo.toml"),
        ("''", "choirci.yaml:5: rust.targets[0].manifest: expected a non-empty string"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path: Path, manifest: str, message: str) -> None:
    (crate_dir(tmp_path) / "Cargo.lock").write_text("")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "rust:\n  targets:\n    - crate: desktop\n      test: lib\n"
                       f"      manifest: {manifest}\n")
    assert str(caught.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(caught.value)


def test_one_crate_name_cannot_come_from_two_manifests(tmp_path: Path) -> None:
    crate_dir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "rust:\n  targets:\n    - {crate: desktop, test: lib}\n"
                       "    - {crate: desktop, test: x, manifest: desktop/Cargo.toml}\n")
    assert str(caught.value) == (
        f"{tmp_path}/choirci.yaml:4: rust.targets[1].manifest: crate desktop already comes from "
        "the root workspace (rust.targets[0]); give every target of one crate the same manifest")


def test_rust_test_with_a_kind_narrows_to_that_target(tmp_path: Path) -> None:
    """`--rust-test kinds::test:lib` selects the `kind: test` target named lib: only the
    `--lib` target is left out (recorded as deselected), not the selected one."""
    from choirci.narrowing import left_out
    from choirci.settings import Settings

    path = tmp_path / "choirci.yaml"
    path.write_text("rust:\n  targets:\n    - {crate: kinds, kind: test, test: lib}\n"
                    "    - {crate: kinds, kind: lib}\n")
    cfg = config.load(path)
    assert [t.id for t in cfg.rust.targets] == ["kinds::test:lib", "kinds::lib"]
    found = left_out(Settings(config=cfg, closures=(), rust_selection=("kinds::test:lib",),
                              evidence_dir=Path("e"), invocation_dir=Path(".")))
    assert [entry.nodeid for entry in found] == ["rust::kinds::lib::*"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rust:\n  run: per-crate\n",
         "choirci.yaml:2: rust.run: expected one of per-binary, per-test, got 'per-crate'"),
        ("rust:\n  ignored: yes\n",
         "choirci.yaml:2: rust.ignored: expected one of skip, include, only, got True"),
        ("rust:\n  targets:\n    - {crate: a, kind: unit, test: x}\n",
         ("choirci.yaml:3: rust.targets[0].kind: expected one of lib, bin, test, doc, "
          "example, bench, got 'unit'")),
        ("rust:\n  targets:\n    - {crate: a, kind: doc, test: x}\n",
         ("choirci.yaml:3: rust.targets[0].test: kind: doc selects the crate's doc tests; "
          "write 'test: doc' or leave test: out, got 'x'")),
        ("rust:\n  targets:\n    - {crate: a, kind: test}\n",
         "choirci.yaml:3: rust.targets[0]: missing 'test:'"),
    ],
)
def test_kind_run_and_ignored_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path}/{message}"), str(caught.value)


def test_kind_run_and_ignored_defaults_and_ids(tmp_path: Path) -> None:
    rust = load(tmp_path, "rust:\n  targets:\n    - {crate: a, kind: doc}\n"
                          "    - {crate: a, kind: bin, test: srv}\n    - {crate: a, test: t}\n")
    assert (rust.run, rust.ignored) == ("per-binary", "skip")
    assert [t.id for t in rust.targets] == ["a::doc", "a::bin:srv", "a::t"]


def test_workspace_selection_parses_and_names_bad_kinds(tmp_path: Path) -> None:
    path = tmp_path / "choirci.yaml"
    path.write_text("rust:\n  workspace: true\n")
    rust = config.load(path).rust
    assert (rust.workspace, rust.workspace_exclude) == (("lib", "bin"), ())
    path.write_text("rust:\n  workspace:\n    kinds: [lib, test]\n    exclude: [big]\n")
    rust = config.load(path).rust
    assert (rust.workspace, rust.workspace_exclude) == (("lib", "test"), ("big",))
    path.write_text("rust:\n  workspace:\n    kinds: [lib, exe]\n")
    with pytest.raises(ConfigError, match=r"choirci.yaml:3: rust.workspace.kinds\[1\]: expected "
                                          r"one of lib, bin, test, doc, got 'exe'$"):
        config.load(path)


def test_exclusive_is_a_boolean_and_follows_the_target_to_the_command_line(
        tmp_path: Path) -> None:
    from choirci.rust.plan import wanted_targets

    rust = load(tmp_path, "rust:\n  targets:\n    - {crate: a, test: t, exclusive: true}\n"
                          "    - {crate: a, test: u}\n")
    assert [t.exclusive for t in rust.targets] == [True, False]
    assert [w.exclusive for w in wanted_targets(rust, ["a::t::x", "a::u"], "c")] == [True, False]
    with pytest.raises(ConfigError, match=r"rust.targets\[0\].exclusive: expected true or "
                                          r"false, got 'yes'$"):
        load(tmp_path, "rust:\n  targets:\n    - {crate: a, test: t, exclusive: 'yes'}\n")
