"""SpiNNaker's limits that a profile's keys cannot state: cores on one SpiNN-5 board, as ``run_pynn.py`` places the
network, and delays beyond sPyNNaker's native range (``TargetPlugin.fit_checks``, ``delaynir.hardware.fit``).

``run_pynn.py`` gives each population the most neurons per core whose native delay range holds its longest
incoming delay (lags included: ``pynn_export``), so the cores a model needs are

    ⌈n_inputs / 256⌉ + Σ_layers ⌈size / neurons_per_core(longest delay in)⌉ + (one per layer with a bias)

and one board has ``BOARD_CORES`` application cores. Delays beyond 4096 steps do not fit at any core size.
"""

from __future__ import annotations

import math

import numpy as np

from delaynir.hardware.fit import FitViolation
from delaynir.hardware.profile import TargetProfile
from delaynir.ir.graph import DelayGraph, layer_lags
from delaynir.targets.spinnaker.pynn_export import pynn_delay
from delaynir.targets.spinnaker.run_pynn import MAX_NATIVE_DELAY, neurons_per_core

#: application cores of one SpiNN-5 board as sPyNNaker 7.4.1 places them: 856 cores less two per chip (the monitor
#: processor and sPyNNaker's extra monitor) and one packet gatherer per board; measured on the virtual board: 759
#: cores placed, 760 refused (PacmanPlaceException; tests/test_spinnaker.py)
BOARD_CORES = 856 - 2 * 48 - 1
SOURCE_NEURONS_PER_CORE = 256  #: spike sources per core (the input's SpikeSourceArray)


def longest_delays(graph: DelayGraph) -> dict[str, int]:
    """Per layer, the longest delay into it as PyNN carries it (``pynn_export.pynn_delay``; 1 without any)."""
    lags = layer_lags(graph)
    return {
        layer.name: max((int(pynn_delay(p, lags, layer.name).max()) for p in layer.projections if len(p)), default=1)
        for layer in graph.layers
    }


def cores(graph: DelayGraph, longest: dict[str, int] | None = None) -> int:
    """The cores ``run_pynn.py`` makes sPyNNaker use for ``graph`` (module docstring), given its ``longest_delays``
    (computed when not given); delays within range."""
    longest = longest_delays(graph) if longest is None else longest
    return math.ceil(graph.n_inputs / SOURCE_NEURONS_PER_CORE) + sum(
        math.ceil(layer.size / neurons_per_core(longest[layer.name])) + int(np.any(layer.bias != 0))
        for layer in graph.layers
    )


def check(graph: DelayGraph, profile: TargetProfile) -> list[FitViolation]:
    """Delays beyond the native range and a model that needs more cores than one board has."""
    longest = longest_delays(graph)
    out = [
        FitViolation(
            name,
            "max_delay",
            delay,
            MAX_NATIVE_DELAY,
            f"layer {name!r}: a delay of {delay} steps as PyNN carries it (the graph's delay plus the layer lag), "
            f"beyond the {MAX_NATIVE_DELAY} steps sPyNNaker holds natively even at 2 neurons per core; "
            "train with shorter delays",
        )
        for name, delay in longest.items()
        if delay > MAX_NATIVE_DELAY
    ]
    if out:
        return out
    needed = cores(graph, longest)
    if needed > BOARD_CORES:
        out.append(
            FitViolation(
                None,
                "cores",
                needed,
                BOARD_CORES,
                f"the model needs {needed} cores of a SpiNN-5 board's {BOARD_CORES} ({needed - BOARD_CORES} too many): "
                "each layer gets the most neurons per core whose native delay range holds its longest delay "
                "(256 up to 32 steps, halving as delays double); use smaller layers or shorter delays",
            )
        )
    return out
