"""Vendor tool checks: a hardware vendor's own tool run on an exported file without the hardware (a mapper onto a
virtual board, a chip compiler), saying whether the tool accepts the model and what it would use.

A target package registers its checks (``TargetPlugin.tool_checks``, ``delaynir.plugins``); each names the file
format it reads, the module whose ``check(path)`` runs the tool (in the tool's own environment,
``delaynir.export.tool_env``) and the profiles whose graphs it checks. ``check(path)`` returns the figures the tool
reports (a dict of JSON values) when it accepts the file, raises ``ToolRefused`` with the tool's own words when it
does not, and ``ExecutorUnavailable`` when the tool is not installed. ``delaynir map``, ``bundle`` and
``bundle --check`` run them. A check proves what the tool accepts, never what the hardware computes.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delaynir import plugins
from delaynir.errors import ConfigError, DelayNIRError, TargetError
from delaynir.export.executors import ExecutorUnavailable, FileFormat

if TYPE_CHECKING:
    from delaynir.ir.graph import DelayGraph

log = logging.getLogger(__name__)

ACCEPTED, REFUSED, UNAVAILABLE = "accepted", "refused", "unavailable"


class ToolRefused(TargetError):
    """The vendor's tool refused a model: a fit error, in the tool's own words."""


@dataclass(frozen=True)
class ToolCheck:
    """One vendor tool check: its name, the format it reads, its module (``check(path) -> dict``), the profiles
    whose graphs it checks, and what it establishes (one line, for messages and READMEs)."""

    name: str
    format: FileFormat
    module: str
    targets: tuple[str, ...]
    description: str

    def applies(self, graph: DelayGraph) -> bool:
        """Whether ``graph`` was compiled for one of this check's profiles."""
        return graph.target in self.targets

    def run_file(self, path: str | Path) -> dict[str, Any]:
        """The tool on the exported file at ``path``: {"status": accepted, **figures}, {"status": refused,
        "error": the tool's words}, or {"status": unavailable, "error": how to install it}."""
        try:
            figures = importlib.import_module(self.module).check(Path(path))
        except ToolRefused as exc:
            return {"status": REFUSED, "error": str(exc)}
        except ExecutorUnavailable as exc:
            return {"status": UNAVAILABLE, "error": str(exc)}
        return {"status": ACCEPTED, **figures}

    def run(self, graph: DelayGraph) -> dict[str, Any]:
        """``run_file`` on ``graph`` exported to a temporary directory (the format's writer refusing the graph
        raises its ExportError)."""
        with tempfile.TemporaryDirectory(prefix="delaynir-toolcheck-") as tmp:
            return self.run_file(self.format.write(graph, Path(tmp) / self.format.file))


def tool_checks(graph: DelayGraph | None = None) -> tuple[ToolCheck, ...]:
    """Every installed target's tool checks; with ``graph``, those that apply to it."""
    found = plugins.unique("tool check", ((c.name, p.name, c) for p in plugins.plugins() for c in p.tool_checks))
    return tuple(c for c in found.values() if graph is None or c.applies(graph))


def named(names: list[str] | None, graph: DelayGraph) -> tuple[ToolCheck, ...]:
    """The checks ``names`` (ConfigError for an unknown one), or those that apply to ``graph``."""
    if not names:
        return tool_checks(graph)
    known = {c.name: c for c in tool_checks()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown tool check {unknown[0]!r}; installed: {', '.join(known) or 'none'}")
    return tuple(known[n] for n in names)


def summary(name: str, result: dict[str, Any]) -> str:
    """One line for a person: what the tool said."""
    if result["status"] != ACCEPTED:
        return f"{name}: {result['status']}: {result.get('error')}"
    figures = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("status", "note"))
    return f"{name}: accepted ({figures})" + (f"; {result['note']}" if result.get("note") else "")


def refusal(results: dict[str, dict[str, Any]]) -> DelayNIRError | None:
    """A ToolRefused naming every refusing tool, or None."""
    refused = {name: r for name, r in results.items() if r["status"] == REFUSED}
    if not refused:
        return None
    return ToolRefused(
        "model does not fit: the vendor's tool refused it, although delaynir's fit check accepted it (a gap in "
        "the target's profile; please report it):\n  - "
        + "\n  - ".join(f"{name}: {r['error']}" for name, r in refused.items())
    )
