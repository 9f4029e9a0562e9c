"""The grind services of a test host: env files, plain processes, and a Caddy stand-in.

The environments follow CONTRACT §5: each sandbox carries the gateway metadata
(``CHOIR_SANDBOX_*``, which turns the sandbox's keyless enforcement on) and the gateway token.
The healthy host sets no ``AWS_BEARER_TOKEN_BEDROCK``: the sandbox's own keyless policy refuses
it at start-up, and ``CHOIR_ENFORCE_KEYLESS_SANDBOX=0`` (what would keep it running) is itself a
failure of the keyless check. Tests that plant a key turn enforcement off on purpose (and
expect that to be reported too), or plant it in a stand-in process (:func:`standin`).
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

GATEWAY_TOKEN = "gw-test-token-not-a-secret"
ROLES = {"live": 8080, "dev": 8081}


def sandbox_env(role: str, port: int, bind: str = "0.0.0.0") -> dict[str, str]:
    return {
        "PORT": str(port), "BIND_ADDR": bind, "CHOIROS_INSTANCE_ROLE": role,
        "CHOIR_SANDBOX_ID": f"tester:{role}", "CHOIR_SANDBOX_ROLE": role,
        "CHOIR_SANDBOX_USER_ID": "tester", "CHOIR_PROVIDER_GATEWAY_TOKEN": GATEWAY_TOKEN,
        "DATABASE_URL": f"sqlite:/opt/choiros/data/{role}/events.db", "SQLX_OFFLINE": "true",
    }


def hypervisor_env(port: int, bind: str = "0.0.0.0") -> dict[str, str]:
    return {"HYPERVISOR_PORT": str(port), "BIND_ADDR": bind,
            "CHOIR_PROVIDER_GATEWAY_TOKEN": GATEWAY_TOKEN}


def env_file(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


class Processes:
    """Plain child processes (the no-systemd host); stop() ends every one of them."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        self.procs[name] = subprocess.Popen(argv, env=full, stdout=log, stderr=log,
                                            start_new_session=True)

    def raise_if_exited(self) -> None:
        """A service that died during start-up is an error now, with its log, not a timeout."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.logdir / f"{name}.log").read_text(errors="replace").strip()
                raise RuntimeError(f"service {name} exited with status {proc.returncode} while "
                                   f"starting: {log[-300:] or 'no output'}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


class FakeCaddy:
    """Host-based routing like the grind Caddyfile: apex -> 308 os.<apex>, os.<apex>/login 200."""

    def __init__(self, apex: str, port: int) -> None:
        target = f"os.{apex}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                if host == apex:
                    self.send_response(308)
                    self.send_header("Location", f"http://{target}:{port}{self.path}")
                elif host == target and self.path == "/login":
                    self.send_response(200)
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        # shutdown() waits for serve_forever() to acknowledge: on a server that never started
        # it blocks forever (a failed fixture set-up must error, not hang).
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


class Route:
    """One canned answer of :class:`FakeHttp`; ``hang`` keeps the connection open after the
    body (a body that never ends, as a stuck upstream behind a proxy does)."""

    def __init__(self, status: int, body: str = "", headers: Mapping[str, str] | None = None,
                 hang: float = 0.0) -> None:
        self.status, self.body, self.headers, self.hang = status, body, dict(headers or {}), hang


class FakeHttp:
    """A tiny HTTP service on 127.0.0.1 with canned answers per path (404 elsewhere)."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        routes_ref = self.routes
        self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes_ref.get(self.path, Route(404))
                body = route.body.encode()
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                # A hanging answer announces more than it sends, so the client waits for it.
                self.send_header("Content-Length", str(len(body) + (100 if route.hang else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if route.hang:
                    release.wait(route.hang)

            def log_message(self, *args: object) -> None:
                pass

        release = self.release
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def standin(directory: Path, name: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A process named ``name`` (``sleep`` through a symlink of that name) with exactly ``env``:
    what the environment checks see of a sandbox or hypervisor, without the real program's
    own start-up policy (the real sandbox refuses to start with a key when enforcement is on)."""
    link = directory / name
    if not link.exists():
        directory.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shutil.which("sleep") or "/bin/sleep")
    return subprocess.Popen([str(link), "600"], env=dict(env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
