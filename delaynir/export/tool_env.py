"""Tools that live in their own Python environment and run as a subprocess (a chip vendor's simulator, a
neuroscience simulator): which interpreter, how to say it is missing, and how to run a script there.

The interpreter is ``$<variable>`` when set, else ``bin/python`` of the environment the tool's build script makes
by default (``$<env_variable>``, else ``~/.cache/delaynir/<default_env>``). A script run there imports no delaynir;
it exchanges files with the caller.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from delaynir.errors import ExportError
from delaynir.export.executors import ExecutorUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolEnvironment:
    """One tool's environment. ``executor``: the simulator name users pass (``--sims``); ``label``: the tool's
    name in messages; ``build``: the command that builds the environment."""

    executor: str
    label: str
    variable: str
    env_variable: str
    default_env: str
    build: str

    def chosen(self) -> tuple[Path, str]:
        """(the environment's python, how it was chosen, for messages)."""
        explicit = os.environ.get(self.variable)
        if explicit:
            return Path(explicit), f"${self.variable}={explicit}"
        env = Path(os.environ.get(self.env_variable) or Path.home() / ".cache" / "delaynir" / self.default_env)
        python = env / "bin" / "python"
        return python, f"{python} (the default {self.label} environment)"

    def unavailable(self, why: str) -> ExecutorUnavailable:
        return ExecutorUnavailable(
            f"{self.label} ({self.executor!r}) cannot run: {why}; build the {self.label} environment with "
            f"`{self.build}` and/or set {self.variable} to its bin/python"
        )

    def python(self) -> Path:
        """The environment's python; ExecutorUnavailable saying how to build it when there is none."""
        python, where = self.chosen()
        if not python.is_file():
            raise self.unavailable(f"no Python at {where}")
        return python

    def run(
        self, script: Path, args: list[str], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        """``script args`` with the environment's python in ``cwd`` (one thread per library unless OMP_NUM_THREADS
        says otherwise; ``env`` added to the environment); ExecutorUnavailable when that python cannot import the
        tool, ExportError with the end of its error output (``what`` it failed to do) for any other failure."""
        python = self.python()
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
        log.info("running %s with %s: %s", script.name, python, what)
        done = subprocess.run([str(python), str(script), *args], capture_output=True, text=True, env=env, cwd=cwd)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            _, where = self.chosen()
            if lines and lines[-1].startswith(("ModuleNotFoundError", "ImportError")):  # not the tool's environment
                raise self.unavailable(f"the Python at {where} cannot import what {self.label} needs ({lines[-1]})")
            tail = "\n".join(lines[-15:])
            raise ExportError(f"{self.label} ({where}) failed to {what} (exit {done.returncode}):\n{tail}")
