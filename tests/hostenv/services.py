"""The grind services of a test host: env files, plain processes, and a Caddy stand-in.

The environments follow CONTRACT §5: each sandbox carries the gateway metadata
(``CHOIR_SANDBOX_*``), the gateway token and ``AWS_BEARER_TOKEN_BEDROCK`` equal to it (the
hypervisor sets it on purpose, §8.10). Because the sandbox's own keyless policy would then
refuse to start, ``CHOIR_ENFORCE_KEYLESS_SANDBOX=0`` keeps it running, which is also what lets a
planted key survive long enough for the host check to catch it.
"""

from __future__ import annotations

import http.server
import os
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
        "AWS_BEARER_TOKEN_BEDROCK": GATEWAY_TOKEN, "CHOIR_ENFORCE_KEYLESS_SANDBOX": "0",
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
        self.server.shutdown()
        self.server.server_close()
