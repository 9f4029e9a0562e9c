"""The ``loops`` area: one ``loops::<name>`` item per CI-parity step (marker ``loop``).

A step is an argv from ``loops:`` in choirci.yaml (``cargo fmt --check``), optionally run
inside a dev shell as ``nix develop <shell> --command <argv>`` (the grind-check loop). It
runs in the workspace root under the host build lock (a ``cargo check`` builds too) and
records the exact argv it ran and how it exited; a failure shows the tail of its output.
The items share the closures' xdist group so one worker holds the lock for both.
"""

from __future__ import annotations

import shlex
import threading

import pytest

from choirci import proc
from choirci import settings as settings_mod
from choirci.config import LoopStep
from choirci.errors import ChoirciError
from choirci.items import AreaCollector, ChoirciItem, ItemFailed, announcer, harness_error
from choirci.nix.adapter import Nix, tail
from choirci.nix.closures import XDIST_GROUP, Progress, build_lock, require_nix
from choirci.nix.lock import BuildLock
from choirci.settings import Settings

AREA = "loops"


def collect_area(session: pytest.Session, settings: Settings) -> pytest.Collector | None:
    if not settings.config.loops:
        return None
    return LoopsArea.from_parent(session, name=AREA, nodeid=AREA)


class LoopsArea(AreaCollector):
    def collect(self) -> list[pytest.Item]:
        settings = settings_mod.get(self.config)
        assert settings is not None
        loops = settings.config.loops
        return [LoopItem.from_parent(self, name=step.name, step=step) for step in loops]


class LoopItem(ChoirciItem):
    def __init__(self, *, step: LoopStep, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.step = step
        self.add_marker(pytest.mark.loop)
        self.add_marker(pytest.mark.xdist_group(XDIST_GROUP))
        self.argv: list[str] = list(step.argv)
        self.lock: BuildLock | None = None

    def setup(self) -> None:
        settings = settings_mod.get(self.config)
        assert settings is not None
        cfg = settings.config
        if self.step.develop is not None:
            nix = Nix.from_settings(cfg.nix, cfg.root)
            require_nix(nix, cfg)
            self.argv = nix.develop_argv(self.step.develop, self.step.argv)
        elif proc.which(self.step.argv[0]) is None:
            harness_error(f"loops.{self.step.name}: '{self.step.argv[0]}' not found on PATH; "
                          "install it or run the step inside a dev shell (develop: ./shell)")
        self.record("command", shlex.join(self.argv))
        if self.step.develop is not None:
            self.record("develop", self.step.develop)
        # Taken in setup so that a lock timeout is an ERROR (harness), not a failed step.
        self.lock = build_lock(self.config, cfg)
        try:
            self.lock.acquire()
        except ChoirciError as exc:
            harness_error(str(exc))

    def teardown(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def runtest(self) -> None:
        settings = settings_mod.get(self.config)
        assert settings is not None
        cfg = settings.config
        output: list[str] = []
        guard = threading.Lock()
        progress = Progress(announcer(self.config), self.config.get_verbosity(),
                            what=f"loop step {self.step.name}", label=self.step.name)

        def collect(line: str) -> None:
            with guard:  # stdout and stderr arrive on two threads: keep their real order
                output.append(line)
            progress(line)

        with progress:
            result = proc.run(self.argv, cwd=cfg.root, timeout=self.step.timeout,
                              on_stdout=collect, on_stderr=collect)
        self.record("exit_status", result.describe_exit())
        self.record("duration", f"{result.duration:.3f}")
        if not result.ok:
            timeout = ""
            if result.timed_out:
                timeout = f" (loops.{self.step.name}.timeout is {self.step.timeout:.0f}s)"
            raise ItemFailed(
                f"loop step {self.step.name}: `{result.command}` {result.describe_exit()}{timeout}",
                "last lines of its output:\n" + (tail("\n".join(output)) or "(no output)"),
            )

    def reportinfo(self) -> tuple[object, int | None, str]:  # type: ignore[override]
        return self.config.rootpath, None, self.step.command
