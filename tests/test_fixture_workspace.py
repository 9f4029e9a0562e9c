"""Layer-4 proof that ``fixtures/choiros-mini`` builds and behaves, with real tools.

Every test works on one copy of the fixture in a temporary git repository
(sub-flakes use ``src = ../.``, and a flake in a git checkout only sees
tracked or staged files). cargo and Nix run for real, offline; the built
services are started on 127.0.0.1 only. A test skips only when ``git``,
``cargo`` or ``nix`` is not installed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "choiros-mini"

# Offline Nix 2.8 settings (see fixtures/choiros-mini/README.md, "Nix settings"):
# no substituters; no sandbox and builds as root, because the fixture's
# builder calls the host's cargo under /root; an absent flake registry, so
# `nix develop` does not spend seconds trying to download it.
NIX_CONFIG = (
    "experimental-features = nix-command flakes\n"
    "substituters =\n"
    "sandbox = false\n"
    "build-users-group =\n"
    "flake-registry = /var/empty/no-flake-registry.json\n"
    "warn-dirty = false"
)

# store path name -> (installable, executable)
PACKAGES = {
    "sandbox-0.1.0": ("./sandbox#sandbox", "sandbox"),
    "hypervisor-0.1.0": ("./hypervisor#hypervisor", "hypervisor"),
    "dioxus-desktop-0.1.0": ("./dioxus-desktop#desktop", "dioxus-desktop"),
}

LIBTEST_LINE = re.compile(
    r"^test (\S+)(?: - should panic)? \.\.\. (ok|FAILED|ignored)", re.MULTILINE
)
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
FAKE_KEY = "sk-fixture-secret-do-not-print"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        rustup_bin = Path.home() / ".cargo" / "bin" / name
        if os.access(rustup_bin, os.X_OK):
            found = str(rustup_bin)
    if found is None:
        pytest.skip(f"{name} is not installed (not on PATH, not in ~/.cargo/bin)")
    return found


def _run(
    argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, (
        f"{shlex.join(argv)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def _libtest_outcomes(stdout: str) -> dict[str, str]:
    return dict(LIBTEST_LINE.findall(stdout))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    git = _tool("git")
    root = tmp_path_factory.mktemp("fixture") / "choiros-mini"
    shutil.copytree(
        FIXTURE, root, symlinks=True, ignore=shutil.ignore_patterns("target", "result*")
    )
    _run([git, "init", "-q"], root)
    _run([git, "add", "-A"], root)
    return root


@pytest.fixture(scope="module")
def cargo_env() -> dict[str, str]:
    cargo = Path(_tool("cargo"))
    return {**os.environ, "PATH": f"{cargo.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def nix_env() -> dict[str, str]:
    _tool("nix")
    return {**os.environ, "NIX_CONFIG": NIX_CONFIG}


@pytest.fixture(scope="module")
def built(workspace: Path, nix_env: dict[str, str]) -> dict[str, Path]:
    """One `nix build` of the three installables: store path name -> out path."""
    installables = [installable for installable, _ in PACKAGES.values()]
    argv = ["nix", "build", *installables, "--no-link", "--json", "--keep-going"]
    result = _run(argv, workspace, nix_env)
    outs = [Path(record["outputs"]["out"]) for record in json.loads(result.stdout)]
    return {out.name.split("-", 1)[1]: out for out in outs}


def test_cargo_workspace_tests_pass_offline(workspace: Path, cargo_env: dict[str, str]) -> None:
    result = _run(["cargo", "test", "--workspace", "--offline"], workspace, cargo_env)
    outcomes = _libtest_outcomes(result.stdout)
    expected = {
        "test_health_check": "ok",
        "test_conductor_execute_returns_run_id": "ok",
        "test_conductor_run_reaches_terminal_status": "ok",
        "test_unknown_run_is_404": "ok",
        "test_unknown_run_status_is_rejected": "ok",  # should_panic
        "test_health_over_loopback_socket": "ok",
        "test_alm_eval_live_models": "ignored",
        "supervision_tests_require_feature": "ok",  # the placeholder
        "test_login_is_public_html": "ok",
        "test_health_redirects_to_login": "ok",
        "test_gate_over_loopback_socket": "ok",
        "keyless::tests::violation_names_the_key_not_the_value": "ok",
        "tests::health_json_has_the_real_field_order": "ok",
    }
    assert {name: outcomes.get(name) for name in expected} == expected
    assert "FAILED" not in outcomes.values()
    # Without the feature the gated supervision tests do not even exist.
    assert not any(name.startswith("supervision::") for name in outcomes)


def test_supervision_feature_runs_gated_tests(workspace: Path, cargo_env: dict[str, str]) -> None:
    argv = ["cargo", "test", "-p", "sandbox", "--features", "supervision_refactor"]
    argv += ["--test", "supervision_test", "--offline"]
    outcomes = _libtest_outcomes(_run(argv, workspace, cargo_env).stdout)
    assert outcomes == {
        "supervision::test_clean_exit_is_not_restarted": "ok",
        "supervision::test_worker_restarts_after_panic": "ok",
        "supervision::test_supervisor_gives_up_after_max_restarts": "ok",
    }


def test_nix_builds_named_executables(
    built: dict[str, Path], workspace: Path, nix_env: dict[str, str]
) -> None:
    assert set(built) == set(PACKAGES)
    for name, (_, executable) in PACKAGES.items():
        binary = built[name] / "bin" / executable
        assert built[name].parent == Path("/nix/store")
        assert os.access(binary, os.X_OK), binary
    desktop = built["dioxus-desktop-0.1.0"]
    assert (desktop / "share/dioxus-desktop/dist/index.html").is_file()
    version = _run([str(desktop / "bin/dioxus-desktop"), "--version"])
    assert version.stdout.strip() == "dioxus-desktop 0.1.0"
    # A second build of the same tree is a no-op.
    argv = ["nix", "build", *(i for i, _ in PACKAGES.values()), "--no-link", "--json"]
    assert "building" not in _run(argv, workspace, nix_env).stderr


def test_nix_develop_provides_cargo(workspace: Path, nix_env: dict[str, str]) -> None:
    argv = ["nix", "develop", "./sandbox", "--command", "cargo", "--version"]
    assert _run(argv, workspace, nix_env).stdout.startswith("cargo ")


@contextlib.contextmanager
def _serving(binary: Path, env: dict[str, str], port_var: str) -> Iterator[int]:
    """Starts `binary` on 127.0.0.1 with port 0 and yields the port it bound."""
    env = {**env, "BIND_ADDR": "127.0.0.1", port_var: "0"}
    proc = subprocess.Popen(
        [str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    bound = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if LISTENING.search(line):
                bound.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert bound.wait(timeout=20), f"{binary} did not start: {''.join(lines)}"
        match = next(m for m in map(LISTENING.search, lines) if m)
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)


def _get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        headers = {key.lower(): value for key, value in response.getheaders()}
        return response.status, headers, response.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize(("role", "reported"), [(None, "unknown"), ("grind-test", "grind-test")])
def test_built_sandbox_answers_health(
    built: dict[str, Path], role: str | None, reported: str
) -> None:
    env = {} if role is None else {"CHOIROS_INSTANCE_ROLE": role}
    with _serving(built["sandbox-0.1.0"] / "bin/sandbox", env, "PORT") as port:
        status, headers, body = _get(port, "/health")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "status": "healthy",
        "service": "choiros-sandbox",
        "version": "0.1.0",
        "instance_role": reported,
        "hostname": "unknown",
    }


def test_built_sandbox_refuses_provider_keys_when_managed(built: dict[str, Path]) -> None:
    env = {"CHOIR_SANDBOX_ID": "user-1:live", "ZAI_API_KEY": FAKE_KEY}
    env |= {"BIND_ADDR": "127.0.0.1", "PORT": "0"}
    binary = built["sandbox-0.1.0"] / "bin/sandbox"
    result = subprocess.run(
        [str(binary)], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode != 0
    assert "Keyless sandbox policy violation: ZAI_API_KEY" in result.stderr
    assert FAKE_KEY not in result.stdout + result.stderr


def test_built_hypervisor_gates_private_paths(built: dict[str, Path]) -> None:
    with _serving(built["hypervisor-0.1.0"] / "bin/hypervisor", {}, "HYPERVISOR_PORT") as port:
        login = _get(port, "/login")
        private = {path: _get(port, path) for path in ("/health", "/admin/sandboxes")}
    assert login[0] == 200
    assert login[1]["content-type"].startswith("text/html")
    for path, (status, headers, _) in private.items():
        assert (status, headers.get("location")) == (303, "/login"), path
