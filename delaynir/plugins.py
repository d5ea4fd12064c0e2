"""Target plug-ins: everything a hardware target brings, found at run time; the core names none.

A target is one package. Its ``__init__`` defines ``PLUGIN = TargetPlugin(...)``: the profile files it
ships (TOML beside the package), the arithmetics the reference simulator can compute its graphs in, the
file formats it exports and the executors that run them, and the scripts that build a tool environment
it needs. Packages are found in two places, both searched on first use:

* every sub-package of ``delaynir.targets`` (the repository's ``targets/`` folder) that defines ``PLUGIN``;
* every entry point of group ``delaynir.targets`` (``[project.entry-points."delaynir.targets"]`` in the
  plug-in's own pyproject.toml), which names its ``PLUGIN`` object: a target installed from elsewhere.

Attributes that need heavy imports are given as ``"module:attribute"`` strings and imported only when
used, so listing the targets imports no simulator. Everything here is read by the registries of the
core: ``delaynir.hardware.profile`` (profiles), ``delaynir.numerics.number_formats`` (arithmetics) and
``delaynir.export.executors`` (formats and executors).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from typing import TYPE_CHECKING, Any, TypeVar

from delaynir.errors import DelayNIRError, reason

if TYPE_CHECKING:
    from delaynir.export.executors import Executor, FileFormat
    from delaynir.export.tool_checks import ToolCheck

log = logging.getLogger(__name__)

V = TypeVar("V")

ENTRY_POINT_GROUP = "delaynir.targets"  #: the entry-point group an installed target registers under
BUILTIN_PACKAGE = "delaynir.targets"  #: the package whose sub-packages are the repository's targets


class PluginError(DelayNIRError):
    """A target package that cannot be loaded or that contradicts another one."""


@dataclass(frozen=True)
class TargetPlugin:
    """What one target package registers.

    ``name``: the package's target name. ``profiles``: profile file names relative to the package
    (``loihi2.toml``), each a profile named by its stem. ``arithmetics``: arithmetic name → "module:attribute"
    of a ``delaynir.numerics.number_formats.Arithmetic``. ``formats`` and ``executors``: the file formats this target
    exports and the executors that run them (``delaynir.export.executors``). ``environments``: tool name → script
    (relative to the package) that builds the environment the tool runs in. ``default_profile``: the profile
    that shows this target's chip arithmetic where a command compiles for "the chip" unless told otherwise
    (the demo's chip leg, the report's fit table). ``tool_checks``: the vendor tools that check an exported file
    without the hardware (``delaynir.export.tool_checks``). ``fit_checks``: profile name → "module:function" of
    (graph, profile) → list of FitViolation, the limits of this target a profile's keys cannot state
    (``delaynir.hardware.fit`` adds them).
    """

    name: str
    description: str
    package: str
    profiles: tuple[str, ...] = ()
    arithmetics: Mapping[str, str] = field(default_factory=dict)
    formats: tuple[FileFormat, ...] = ()
    executors: tuple[Executor, ...] = ()
    environments: Mapping[str, str] = field(default_factory=dict)
    default_profile: str | None = None
    tool_checks: tuple[ToolCheck, ...] = ()
    fit_checks: Mapping[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Traversable:
        """The package's folder (profiles and scripts are found relative to it)."""
        return resources.files(self.package)

    def profile_files(self) -> dict[str, Traversable]:
        """Profile name → its TOML file."""
        return {name.removesuffix(".toml"): self.folder / name for name in self.profiles}

    def environment_script(self, tool: str) -> Traversable:
        """The script that builds ``tool``'s environment."""
        return self.folder / self.environments[tool]


def load_attribute(path: str) -> Any:
    """The object named "module:attribute", imported now."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


_registered: dict[str, TargetPlugin] | None = None


def _builtin() -> Iterator[tuple[str, Any]]:
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
        if info.ispkg:
            module = importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
            if hasattr(module, "PLUGIN"):
                yield module.__name__, module.PLUGIN


def _installed() -> Iterator[tuple[str, Any]]:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            yield f"entry point {entry.name} = {entry.value}", entry.load()
        except Exception as exc:  # a broken third-party package must not take the core down with it
            log.warning("target plug-in %s = %s not loaded: %s", entry.name, entry.value, reason(exc))


def _discover() -> dict[str, TargetPlugin]:
    found: dict[str, TargetPlugin] = {}
    for origin, plugin in [*_builtin(), *_installed()]:
        if not isinstance(plugin, TargetPlugin):
            raise PluginError(f"{origin}: PLUGIN is a {type(plugin).__name__}, not a delaynir.plugins.TargetPlugin")
        if plugin.name in found:
            if found[plugin.name] == plugin:  # the same package found twice (on the path and as an entry point)
                continue
            raise PluginError(
                f"two target packages are named {plugin.name!r} ({found[plugin.name].package} and "
                f"{plugin.package}); uninstall one"
            )
        found[plugin.name] = plugin
        log.debug("target plug-in %s from %s", plugin.name, origin)
    return found


def plugins() -> tuple[TargetPlugin, ...]:
    """Every target package, the repository's first, each group in name order."""
    global _registered
    if _registered is None:
        _registered = _discover()
    return tuple(_registered.values())


def register(plugin: TargetPlugin) -> None:
    """Add a target from code (a notebook, a test) as if it were installed; PluginError if its name is taken."""
    plugins()
    assert _registered is not None
    if plugin.name in _registered:
        raise PluginError(f"a target named {plugin.name!r} is already registered ({_registered[plugin.name].package})")
    _registered[plugin.name] = plugin


def unregister(name: str) -> None:
    """Remove a target registered with ``register`` (or found); nothing when there is none."""
    plugins()
    assert _registered is not None
    _registered.pop(name, None)


def rediscover() -> None:
    """Forget what was found, so the next lookup searches the packages again (after installing one)."""
    global _registered
    _registered = None


def unique(kind: str, entries: Iterable[tuple[str, str, V]]) -> dict[str, V]:
    """name → value over (name, owner, value) entries, in order; PluginError naming both owners where a name
    repeats (the one rule for every registry: profiles, arithmetics, executors)."""
    found: dict[str, tuple[str, V]] = {}
    for name, owner, value in entries:
        if name in found:
            raise PluginError(
                f"the {kind} {name!r} is registered twice, by {found[name][0]} and {owner}; uninstall one"
            )
        found[name] = (owner, value)
    return {name: value for name, (_, value) in found.items()}


def profile_files() -> dict[str, Traversable]:
    """Profile name → TOML file, over every target package."""
    return unique("profile", ((name, p.name, file) for p in plugins() for name, file in p.profile_files().items()))


def arithmetic_paths() -> dict[str, str]:
    """Arithmetic name → "module:attribute", over every target package."""
    return unique("arithmetic", ((name, p.name, path) for p in plugins() for name, path in p.arithmetics.items()))


def fit_check_paths() -> dict[str, str]:
    """Profile name → "module:function" of its target's own fit check, over every target package."""
    return unique("fit check", ((name, p.name, path) for p in plugins() for name, path in p.fit_checks.items()))


def default_chip() -> str | None:
    """The first target package's ``default_profile`` (None when no chip target is installed)."""
    return next((p.default_profile for p in plugins() if p.default_profile), None)
