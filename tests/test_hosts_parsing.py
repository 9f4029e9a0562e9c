"""Layer 1: host_checks config validation, the probe parsers, and host selection helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci.config import load
from choirci.errors import ConfigError
from choirci.hosts import probe as hostprobe
from choirci.hosts import promoted
from choirci.hosts.connect import SshReuse, redact_spec, resolve_targets


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "choirci.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    hc = load(write(tmp_path, "host_checks: {}\n")).host_checks
    assert hc.configured
    assert hc.units == ("hypervisor", "container@sandbox-live", "container@sandbox-dev")
    assert [p.port for p in hc.ports] == [9090, 8080, 8081]
    assert [(s.role, s.url) for s in hc.sandboxes] == [
        ("live", "http://127.0.0.1:8080"), ("dev", "http://127.0.0.1:8081")]
    assert "ZAI_API_KEY" in hc.forbidden_env and "FLAKEHUB_AUTH_TOKEN" in hc.forbidden_env
    assert not load(write(tmp_path, "closures: {}\n")).host_checks.configured


def test_overrides_and_empty_lists(tmp_path: Path) -> None:
    text = ("host_checks:\n  units: []\n  ports: [9090, {port: 8080, container: sandbox-live}]\n"
            "  sandboxes: {live: 'http://10.233.1.2:8080'}\n  disk: {/: 10%, /nix: 2GiB}\n")
    hc = load(write(tmp_path, text)).host_checks
    assert hc.units == ()
    assert hc.ports[1].container == "sandbox-live"
    assert hc.sandboxes[0].instance_role == "live"
    assert hc.disk["/"].min_percent == 10 and hc.disk["/nix"].min_bytes == 2 << 30


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  unit: [x]", "choirci.yaml:2: host_checks.unit: unknown key (did you mean 'units'?)"),
        ("  ports: [80000]", "choirci.yaml:2: host_checks.ports[0].port: expected a TCP port 1-65535, got 80000"),
        ("  disk: {/: lots}", "host_checks.disk./: expected a size like '512MiB', '2GiB' or '10%', got 'lots'"),
        ("  sandboxes: {live: {instance_role: x}}", "host_checks.sandboxes.live: missing 'url:'"),
        ("  hypervisor_url: localhost:9090", "host_checks.hypervisor_url: expected 'http://HOST:PORT'"),
        ("  protected_paths: [admin]", "host_checks.protected_paths[0]: expected a URL path like '/login'"),
        ("  binaries: {sandbox: abc}", "host_checks.binaries.sandbox: expected a store path or 'sha256:<64 hex>'"),
        ("  memory_available: 5%", "host_checks.memory_available: expected an absolute size"),
        ("  manifest_gc_roots: maybe", "host_checks.manifest_gc_roots: expected one of fail, warn, off"),
        ("  workspace: [opt/ws]", "host_checks.workspace[0]: expected an absolute path"),
        ("  secret_modes: {/k: 600}", "host_checks.secret_modes./k: expected a quoted octal mode"),
        ("  manifest_units: [hypervisor]", "host_checks.manifest_units: expected a mapping"),
        ("  sandbox_process: choiros-sandbox-live", "host_checks.sandbox_process: process names are at most "
         "15 characters (the kernel's comm), got 'choiros-sandbox-live'; use 'choiros-sandbox'"),
        ("  command_timeout: 0", "host_checks.command_timeout: expected a positive number of seconds"),
        ("  connect_timeout: 0", "host_checks.connect_timeout: expected a whole number >= 1, got 0"),
        ("  max_restarts: -1", "host_checks.max_restarts: expected a whole number >= 0, got -1"),
    ],
)
def test_config_errors_are_one_line_with_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path, f"host_checks:\n{body}\n"))
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_release_and_state_keys(tmp_path: Path) -> None:
    hc = load(write(tmp_path, "host_checks: {}\n")).host_checks
    assert hc.manifest is None and hc.manifest_gc_roots == "fail"
    assert hc.manifest_units == {"hypervisor": "hypervisor"}
    assert hc.workspace == ("/opt/choiros/workspace",) and hc.workspace_branch == "main"
    assert hc.oneshot_units == ("choiros-flakehub-login",)
    assert hc.secret_modes == {"/var/lib/sops-nix/key.txt": "600", "/run/secrets/rendered/*": "400"}
    text = ("host_checks:\n  manifest: releases/r.env\n  sandbox_process: sbx\n  workspace: null\n"
            "  secret_modes: {/k: '0400'}\n  manifest_gc_roots: warn\n")
    hc = load(write(tmp_path, text)).host_checks
    assert hc.manifest == "releases/r.env" and hc.manifest_gc_roots == "warn"
    assert hc.manifest_processes == {"sandbox": "sbx", "hypervisor": "hypervisor"}
    assert hc.workspace == () and hc.secret_modes == {"/k": "400"}


def test_parse_release_probes() -> None:
    exes = promoted.parse_exes("EXE 7 ab /opt/choiros/bin/h (deleted)\nEXE 8 - \nEXE 9 -\n")
    assert [(e.pid, e.path, e.sha256) for e in exes] == [
        (7, "/opt/choiros/bin/h (deleted)", "ab"), (8, "", ""), (9, "", "")]
    store = promoted.parse_store("PATH valid exists /nix/store/a\nPATH unknown absent /nix/store/b c\n")
    assert store["/nix/store/a"].valid is True and store["/nix/store/b c"] == promoted.StoreState(
        "/nix/store/b c", None, False)
    roots = ("/proc/12/exe -> /nix/store/a\n{censored} -> /nix/store/a\n"
             "/nix/var/nix/gcroots/choiros-sandbox -> /nix/store/a\nRC 0\n")
    assert promoted.parse_roots(roots) == (["/nix/var/nix/gcroots/choiros-sandbox"], 0)
    assert promoted.parse_roots("/proc/1/maps -> /nix/store/a\nRC 0\n") == ([], 0)
    assert promoted.parse_roots("NONIX\n") is None
    assert promoted.glob_word("/run/secrets/rendered/*") == "/run/secrets/rendered/*"
    assert promoted.glob_word("/a b/*.env") == "'/a b/'*.env"
    modes = promoted.parse_modes("400 root:root /run/secrets/rendered/a b\n")
    assert modes == [promoted.FileMode("/run/secrets/rendered/a b", "400", "root:root")]


def test_git_probe_on_real_checkouts(tmp_path: Path) -> None:
    """The shell program the host runs, run here against real repositories."""
    import subprocess

    def probe(path: Path) -> promoted.Checkout:
        command = promoted.git_command(str(path), "main")
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
        return promoted.parse_git(str(path), out)

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args],
                       check=True, capture_output=True)

    assert probe(tmp_path / "nope").state == "absent"
    assert probe(tmp_path).state == "not-git"
    repo = tmp_path / "ws"
    repo.mkdir()
    git("init", "-q", "-b", "main")
    (repo / "f").write_text("x")
    git("add", "f")
    git("commit", "-q", "-m", "c")
    clean = probe(repo)
    assert (clean.state, clean.branch, clean.dirty, clean.upstream) == ("ok", "main", (), "")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / "new file").write_text("y")
    git("checkout", "-q", "--detach")
    dirty = probe(repo)
    assert dirty.branch == "" and dirty.upstream == dirty.head and dirty.dirty == ('?? "new file"',)


def test_parse_unit_and_ports() -> None:
    state = hostprobe.parse_unit("caddy", "LoadState=not-found\nActiveState=inactive\n")
    assert not state.exists
    assert hostprobe.unit_name("container@sandbox-live") == "container@sandbox-live.service"
    ss = "LISTEN 0 128 0.0.0.0:9090 0.0.0.0:*\nLISTEN 0 128 [::]:22 [::]:*\nESTAB 0 0 1.2.3.4:5 6.7.8.9:10\n"
    assert hostprobe.listening_ports(ss) == {9090, 22}


@pytest.mark.parametrize(
    ("output", "status", "location"),
    [
        ("HTTP/1.1 303 See Other\r\nLocation: /login\r\n\r\n\n@@CHOIRCI@@303", 303, "/login"),
        ('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"a":1}\n@@CHOIRCI@@200', 200, ""),
        ("\n@@CHOIRCI@@000", None, None),
        ("garbage", None, None),
    ],
)
def test_parse_curl(output: str, status: int | None, location: str | None) -> None:
    response = hostprobe.parse_curl("http://x/", output)
    if status is None:
        assert response is None
    else:
        assert response is not None and response.status == status and response.location == location


def test_parse_environ_carries_names_only() -> None:
    out = ("PID 12\nFORBIDDEN ZAI_API_KEY\nALLOWED AWS_BEARER_TOKEN_BEDROCK\nENFORCE on\nROLE live\n"
           "PID 13\nMISSING CHOIR_SANDBOX_ID\nHOLDS X_TOKEN ZAI_API_KEY\nROLE \nHVCOUNT 1\nDONE\n")
    scan = hostprobe.parse_environ(out)
    first, second = scan.processes
    assert (first.pid, first.role, first.forbidden, first.allowed) == (12, "live", ["ZAI_API_KEY"], ["AWS_BEARER_TOKEN_BEDROCK"])
    assert second.missing == ["CHOIR_SANDBOX_ID"] and second.label == "pid 13"
    assert second.holds == ["X_TOKEN (= the hypervisor's ZAI_API_KEY)"] and first.enforcement == "on"
    assert scan.complete and scan.hypervisors == 1
    assert not hostprobe.parse_environ("PID 12\nROLE live\n").complete


def test_glob_ere() -> None:
    import re

    ere = hostprobe.glob_ere(("*_API_KEY", "GROQ_*", "AWS_BEARER_TOKEN_BEDROCK"))
    assert "\\" not in ere  # awk -v would eat backslashes
    for name in ("GEMINI_API_KEY", "GROQ_BASE", "AWS_BEARER_TOKEN_BEDROCK"):
        assert re.match(ere, name), name
    for name in ("API_KEY_FILE", "XGROQ_A", "AWS_BEARER_TOKEN_BEDROCK2"):
        assert not re.match(ere, name), name
    assert not re.match(hostprobe.glob_ere(()), "ANY")


def test_environ_scan_on_real_processes(tmp_path: Path) -> None:
    """The whole probe (pgrep, /proc/<pid>/environ, awk) against stand-in processes here."""
    import subprocess
    import uuid

    from hostenv.services import standin

    tag = uuid.uuid4().hex[:6]
    sandbox, hypervisor = f"sbx-t{tag}", f"hvr-t{tag}"
    base = {"CHOIR_SANDBOX_ID": "u:live", "CHOIR_SANDBOX_ROLE": "live", "CHOIR_PROVIDER_GATEWAY_TOKEN": "gw-1234"}
    procs = [
        standin(tmp_path, hypervisor, {"ZAI_API_KEY": "zai-real-key", "CHOIR_PROVIDER_GATEWAY_TOKEN": "gw-1234",
                                       "AWS_REGION": "eu-west-1"}),  # forbidden-shaped, but no key
        standin(tmp_path, sandbox, {**base, "AWS_BEARER_TOKEN_BEDROCK": "gw-1234", "REGION": "eu-west-1"}),
        standin(tmp_path, sandbox, {**base, "GEMINI_API_KEY": "g", "AWS_BEARER_TOKEN_BEDROCK": "other",
                                    "CHOIR_ENFORCE_KEYLESS_SANDBOX": " Off "}),
        standin(tmp_path, sandbox, {"CHOIR_PROVIDER_GATEWAY_TOKEN": "zai-real-key", "RENAMED": "zai-real-key"}),
    ]
    try:
        command = hostprobe.environ_command(
            sandbox, ("*_API_KEY", "AWS_*"), ("CHOIR_SANDBOX_ID",),
            ("CHOIR_PROVIDER_GATEWAY_*",), hypervisor)
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert done.returncode == 0, done.stderr
    assert "zai-real-key" not in done.stdout and "gw-1234" not in done.stdout
    scan = hostprobe.parse_environ(done.stdout)
    assert scan.complete and scan.hypervisors == 1
    by_pid = {p.pid: p for p in scan.processes}
    good, bad, leak = (by_pid[p.pid] for p in procs[1:])
    assert good.allowed == ["AWS_BEARER_TOKEN_BEDROCK"] and not good.forbidden and good.enforcement == "on"
    assert not good.holds  # equal to the hypervisor's AWS_REGION, which is no key
    assert bad.forbidden == ["AWS_BEARER_TOKEN_BEDROCK", "GEMINI_API_KEY"] and bad.enforcement == "off"
    assert leak.holds == ["CHOIR_PROVIDER_GATEWAY_TOKEN (= the hypervisor's ZAI_API_KEY)",
                          "RENAMED (= the hypervisor's ZAI_API_KEY)"]
    assert leak.enforcement == "unmanaged" and leak.missing == ["CHOIR_SANDBOX_ID"]


def test_parse_df_and_meminfo() -> None:
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\ntmpfs 16384 14336 2048 88% /data\n"
    usage = hostprobe.parse_df("/data", df)
    assert usage is not None and usage.free == 2048 * 1024 and usage.mount == "/data"
    assert hostprobe.parse_meminfo("MemTotal: 10 kB\nMemAvailable:   2048 kB\n") == 2 << 20


def test_redact_spec_hides_password_and_generated_query() -> None:
    spec = "ssh://root:hunter2@host:22?ssh_config=/tmp/x&controlpath=/tmp/d/%25C&sudo=true"
    assert redact_spec(spec) == "ssh://root:***@host:22?sudo=true"


def test_generated_ssh_config_bounds_every_connection(tmp_path: Path) -> None:
    """Keepalives and the connect timeout come first in the file (ssh keeps the first value it
    reads, so a user's config cannot switch them off), and testinfra gets the same connect
    timeout for the -o ConnectTimeout it puts on the command line."""
    import urllib.parse

    from choirci.hosts.connect import Bounds

    user = tmp_path / "user_config"
    user.write_text("Host *\n  ServerAliveInterval 0\n  ConnectTimeout 600\n")
    reuse = SshReuse(tmp_path / "ssh", Bounds(connect_timeout=7, server_alive_interval=2,
                                              server_alive_count_max=4))
    (tmp_path / "ssh").mkdir()
    spec = reuse.augment("ssh://root@h", str(user))
    query = urllib.parse.parse_qs(urllib.parse.urlparse(spec).query)
    assert query["timeout"] == ["7"]
    text = Path(query["ssh_config"][0]).read_text()
    ours = [text.index(o) for o in ("ConnectTimeout 7", "ServerAliveInterval 2", "ServerAliveCountMax 4")]
    assert max(ours) < text.index(f"Include {user}")
    assert redact_spec(spec) == "ssh://root@h"
    # what ssh itself makes of it: ours win over the included user config
    import subprocess

    resolved = subprocess.run(["ssh", "-G", "-F", query["ssh_config"][0], "h"], capture_output=True,
                              text=True, check=True).stdout
    assert "serveraliveinterval 2" in resolved and "connecttimeout 7" in resolved


def test_selection_order(tmp_path: Path) -> None:
    reuse = SshReuse(tmp_path)
    cli = resolve_targets("ssh://a,local://", {"grind": "ssh://a"}, reuse)
    assert [(t.name, t.origin) for t in cli] == [("grind", "--hosts"), ("local", "--hosts")]
    assert "controlpath=" in cli[0].spec and "ssh_config=" in cli[0].spec
    assert resolve_targets(None, {}, reuse)[0].spec == "local://"
    assert resolve_targets(None, {"grind": "local://"}, reuse)[0].origin == "this machine"
    remote = resolve_targets(None, {"grind": "ssh://choiros-grind.invalid"}, reuse)[0]
    assert remote.origin == "hosts.grind" and remote.spec.startswith("ssh://choiros-grind.invalid?")
    rendered = (tmp_path / "ssh_config.0").read_text()
    assert rendered.index("ControlPath") < rendered.index("Include") if "Include" in rendered else True


def test_git_status_failing_is_not_a_clean_tree(tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "ws"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "f").write_text("x")
    subprocess.run(["git", "-C", str(repo), "add", "f"], check=True)
    (repo / ".git" / "index").write_bytes(b"garbage")  # a corrupt index: git status fails
    done = subprocess.run(["sh", "-c", promoted.git_command(str(repo), "main")], capture_output=True, text=True)
    assert done.returncode == 4, done


def test_nix_store_failing_is_not_an_invalid_path(tmp_path: Path) -> None:
    """Only nix-store's own "is not valid" means invalid; a daemon that does not answer exits 4."""
    import os
    import subprocess

    fake = tmp_path / "bin" / "nix-store"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ "$3" = /nix/store/bad ]; then echo "error: path \'$3\' is not valid" >&2; exit 1; fi\n'
                    'if [ "$3" = /nix/store/down ]; then echo "error: cannot connect to socket" >&2; exit 1; fi\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}

    def probe(*paths: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", promoted.store_command(list(paths))], capture_output=True,
                              text=True, env=env)

    ok = probe("/nix/store/good", "/nix/store/bad")
    assert ok.returncode == 0
    states = promoted.parse_store(ok.stdout)
    assert states["/nix/store/good"].valid is True and states["/nix/store/bad"].valid is False
    down = probe("/nix/store/down")
    assert down.returncode == 4 and "cannot connect to socket" in down.stderr
