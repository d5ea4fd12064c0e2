"""The executors: every program that runs a DelayGraph's file, in one registry.

An executor runs one file format, which that format's writer exports from a DelayGraph, and is
provided by one module whose ``load(path)`` returns a model with ``.run(x (T, B, n_inputs))``
returning a ``delaynir.reference.simulate.SimulationResult``. The reference simulator defines the semantics;
every other executor runs an exported file and is checked against it (``delaynir verify``,
``delaynir bundle``), reproducing either

* the target arithmetic: the DelayGraph's equations as the reference simulator computes them for
  the graph's target, operation for operation, or
* the float graph: the same equations in a library's own float64 neuron formulas.

This module is the one place where names turn into modules, by a lazy import of the module
path: the core never imports a converter at module level. The core's executors are ``CORE_EXECUTORS``
(a module with ``load(path)`` in converters/ and one entry there); a target package adds its formats and
executors through its ``PLUGIN`` (``delaynir.plugins``) and ``EXECUTORS`` reads them on every access. An
executor may run only graphs in its own arithmetic (``Executor.applies``: a chip's bit-accurate simulator);
``external(graph)`` lists those that apply to a graph, and verify, bundle, report and demo use it as their
default.
"""

from __future__ import annotations

import importlib
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delaynir import plugins
from delaynir.common.outputs import atomic_path
from delaynir.errors import ConfigError, DelayNIRError, ExportError, reason

if TYPE_CHECKING:
    from delaynir.ir.graph import DelayGraph

TARGET_ARITHMETIC, FLOAT_GRAPH = "target arithmetic", "float graph"
REFERENCE = "reference"


class ExecutorUnavailable(DelayNIRError):
    """An executor's library is not importable here."""


@dataclass(frozen=True)
class Companion:
    """A file a format needs beside its file, copied as it is (the script that runs a data file): its name, the
    package it ships in, what it is."""

    file: str
    package: str
    description: str

    def content(self) -> bytes:
        return (resources.files(self.package) / self.file).read_bytes()


@dataclass(frozen=True)
class FileFormat:
    """A file an executor runs: its name, its file name in a bundle, its writer, a one-line description.

    ``writer`` is "module:function" with function(graph, path) -> Path (atomic, refusing to overwrite).
    ``partial``: the writer refuses some graphs its executors apply to by design (ExportError saying why:
    a chip format, for what it cannot carry exactly); a bundle then leaves the file out and says why,
    and a default verification leaves its executors out with a warning. ``companions``: files written beside
    it (a script that runs it); ``usage``: how a receiving team runs it, for the bundle's README.
    """

    name: str
    file: str
    writer: str
    description: str
    partial: bool = False
    companions: tuple[Companion, ...] = ()
    usage: str | None = None  #: Markdown for the receiving team: how to run the file on the hardware or its tools

    def write(self, graph: DelayGraph, path: str | Path, *, overwrite: bool = False) -> Path:
        """Export ``graph`` to ``path`` in this format, and its companions beside it; return the path.

        A companion already there with the same bytes is kept; one with other bytes is replaced only with
        ``overwrite`` (ExportError before anything is written otherwise)."""
        path = Path(path)
        wanted = {path.parent / c.file: c.content() for c in self.companions}
        stale = [p for p, data in wanted.items() if p.exists() and not (p.is_file() and p.read_bytes() == data)]
        if stale and not overwrite:
            raise ExportError(
                f"{stale[0]} already exists with other contents, and the {self.name} format writes it beside "
                f"{path.name}; pass --overwrite (overwrite=True in Python) or choose another directory"
            )
        existed = path.exists()
        written = plugins.load_attribute(self.writer)(graph, path, overwrite=overwrite)
        try:
            for target, data in wanted.items():
                if not (target.is_file() and target.read_bytes() == data):
                    with atomic_path(target, overwrite=True, error=ExportError) as tmp:
                        tmp.write_bytes(data)
        except BaseException:
            if not existed:
                written.unlink(missing_ok=True)
            raise
        return written


@dataclass(frozen=True)
class Executor:
    """One executor: its name, the format it runs, its module (providing ``load(path)``), what it reproduces
    (TARGET_ARITHMETIC or FLOAT_GRAPH) for a graph in its ``arithmetic``, how to install its library, the
    arithmetic it computes in (None: the graph's own, the reference simulator), and whether it also runs graphs
    in other arithmetics (``other_arithmetics``; False: only graphs in its own, ``applies``)."""

    name: str
    format: FileFormat
    module: str
    reproduces: str
    install: str
    arithmetic: str | None = "float64"
    other_arithmetics: bool = True

    def computes_in(self, graph: DelayGraph) -> bool:
        """Whether this executor computes in ``graph``'s own arithmetic (the reference always does)."""
        return self.arithmetic in (None, graph.arithmetic)

    def applies(self, graph: DelayGraph) -> bool:
        """Whether this executor runs ``graph``: any graph, or with ``other_arithmetics`` False only one in its own
        arithmetic (a chip simulator whose file holds the chip's fixed-point graph)."""
        return self.other_arithmetics or self.computes_in(graph)

    def reproduces_for(self, graph: DelayGraph) -> str:
        """What this executor reproduces for ``graph``: its declared ``reproduces`` when it computes in the graph's
        arithmetic, else the FLOAT_GRAPH (a float64 executor on a graph in a chip's fixed-point arithmetic)."""
        return self.reproduces if self.computes_in(graph) else FLOAT_GRAPH

    def expected_graph(self, graph: DelayGraph) -> DelayGraph:
        """The graph whose reference simulation this executor must reproduce exactly: ``graph`` itself, or for an
        executor computing in another arithmetic, the same graph in that arithmetic."""
        if self.arithmetic is None or self.computes_in(graph):  # None: the graph's own arithmetic
            return graph
        return graph.in_arithmetic(self.arithmetic)

    def load(self, path: str | Path) -> Any:
        """The file at ``path`` opened by this executor; ``.run(x)`` returns a SimulationResult.

        ExecutorUnavailable, naming the executor and how to install it, when its library cannot be imported.
        """
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            if (exc.name or "").split(".")[0] == "delaynir":  # a module of ours missing: a bug, not an install
                raise
            raise ExecutorUnavailable(
                f"simulator {self.name!r} cannot run: its library is not importable "
                f"({reason(exc)}); install it with `{self.install}`"
            ) from None
        return module.load(path)

    def export(self, graph: DelayGraph, path: str | Path) -> Path:
        """Write ``graph`` to ``path`` in the format this executor runs; return the path."""
        return self.format.write(graph, path)


DELAYGRAPH = FileFormat(
    "DelayGraph",
    "model.delaygraph.h5",
    "delaynir.ir.graph_io:save_graph",
    "compiled DelayGraph (HDF5; layout in delaynir's docs/delaygraph-format.md)",
)
NIR = FileFormat(
    "NIR",
    "model.nir",
    "delaynir.export.nir_io:export_nir",
    "the same graph as NIR (nir.Delay for per-synapse delays; docs/nir-export.md)",
)
ONNX = FileFormat(
    "ONNX",
    "model.onnx",
    "delaynir.converters.onnx_export:export_onnx",
    "the same graph as a per-step ONNX model with explicit state (docs/onnx-format.md)",
)

#: The executors of the core, the reference simulator first; target packages add theirs (delaynir.plugins).
CORE_EXECUTORS = (
    Executor(REFERENCE, DELAYGRAPH, "delaynir.reference.executor", TARGET_ARITHMETIC, "pip install delaynir", None),
    Executor("norse", NIR, "delaynir.converters.norse", FLOAT_GRAPH, "pip install 'norse>=1.1.0'"),
    Executor("snntorch", NIR, "delaynir.converters.snntorch", FLOAT_GRAPH, "pip install 'snntorch>=1.0.0'"),
    Executor(
        "onnxruntime", ONNX, "delaynir.converters.onnxruntime", TARGET_ARITHMETIC, "pip install 'onnxruntime>=1.18'"
    ),
)


class _Registry(Mapping[str, Executor]):
    """Every executor by name: the core's, then each target package's (looked up on every access, so a target
    registered later is seen). PluginError when two executors share a name."""

    def _all(self) -> dict[str, Executor]:
        core = ((e.name, "delaynir", e) for e in CORE_EXECUTORS)
        targets = ((e.name, f"target {p.name}", e) for p in plugins.plugins() for e in p.executors)
        return plugins.unique("executor", [*core, *targets])

    def __getitem__(self, name: str) -> Executor:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def items(self) -> ItemsView[str, Executor]:  # one lookup of the plug-ins, not one per name
        return self._all().items()

    def values(self) -> ValuesView[Executor]:
        return self._all().values()


#: Every executor by name, the reference simulator first.
EXECUTORS: Mapping[str, Executor] = _Registry()


def names() -> tuple[str, ...]:
    """Every executor's name, the reference simulator first."""
    return tuple(EXECUTORS)


def external(graph: DelayGraph | None = None) -> tuple[str, ...]:
    """The executors checked against the reference simulator: every one but the reference, in registry order;
    with ``graph``, those that run it (``Executor.applies``)."""
    return tuple(name for name, e in EXECUTORS.items() if name != REFERENCE and (graph is None or e.applies(graph)))


def formats(graph: DelayGraph | None = None) -> tuple[FileFormat, ...]:
    """The file formats, each once, in registry order (the DelayGraph first): those the executors run and those
    target packages export; with ``graph``, those of the executors that run it."""
    if graph is not None:
        return tuple(dict.fromkeys(e.format for e in EXECUTORS.values() if e.applies(graph)))
    written = (f for p in plugins.plugins() for f in p.formats)
    return tuple(dict.fromkeys([*(e.format for e in EXECUTORS.values()), *written]))


def export_formats() -> dict[str, FileFormat]:
    """The formats a DelayGraph is exported to (every one but the DelayGraph's own), by lower-case name."""
    return {fmt.name.lower(): fmt for fmt in formats() if fmt is not DELAYGRAPH}


def export_graph(graph: DelayGraph, path: str | Path, format: str, *, overwrite: bool = False) -> Path:
    """Write ``graph`` to ``path`` in the export format named ``format`` (``export_formats``: nir, onnx and each
    target package's); return the path. ConfigError naming the known formats for another name."""
    formats = export_formats()
    if format.lower() not in formats:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(formats)}")
    return formats[format.lower()].write(graph, path, overwrite=overwrite)
