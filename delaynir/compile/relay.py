"""Relay-neuron expansion: realise delays longer than a target allows with chains of relays.

A synapse i → j with delay d > h (the longest hop the target allows) becomes

    i ─h→ r1(i) ─h→ r2(i) ─h→ … ─h→ r_q(i) ─(d − q·h)→ j,     q = ⌈d / h⌉ − 1,

where r_k(i) is a relay neuron (graph.py: z[t] = I[t], the input passed on unchanged)
that repeats source neuron i delayed by k·h steps. Relays are shared: each (source,
target layer, depth) has one relay layer holding a neuron for each source neuron that
needs that depth. The relay hop weight is the target's weight step with scale 1/step,
so a relay reproduces its input exactly; the final synapse keeps weight, scale and
the remaining delay. Output spikes are exactly those of the unexpanded graph.
"""

from __future__ import annotations

import copy

import numpy as np

from delaynir.errors import TargetError
from delaynir.ir.graph import DelayGraph, Layer, Projection


def _relay_layer(name: str, size: int, source: str, pre: np.ndarray, hop: int, step: int) -> Layer:
    n = np.arange(size)
    hop_proj = Projection(
        source=source,
        pre=pre,
        post=n,
        delay=np.full(size, hop),
        weight=np.full(size, float(step)),
        scale=np.full(size, 1.0 / step),
    )
    return Layer(
        name=name,
        size=size,
        neuron="relay",
        beta=np.zeros(size),
        threshold=np.full(size, np.inf),
        bias=np.zeros(size),
        projections=[hop_proj],
    )


def expand_relays(graph: DelayGraph, hop: int, *, weight_step: int = 1) -> tuple[DelayGraph, int]:
    """A copy of ``graph`` where no synapse delay exceeds ``hop`` steps; returns (graph, relay neurons added)."""
    if hop < 1:
        raise TargetError(
            f"relay neurons need a target delay of at least 1 step per hop (target allows {hop}); "
            "this target cannot realise synaptic delays"
        )
    out = copy.deepcopy(graph)
    layers: list[Layer] = []
    added = 0
    for layer in out.layers:
        projections = []
        for p_index, proj in enumerate(layer.projections):
            depth = np.maximum(-(-proj.delay // hop) - 1, 0)  # q = ceil(d / h) − 1, 0 when d <= h
            keep = depth == 0
            projections.append(
                Projection(
                    proj.source, proj.pre[keep], proj.post[keep], proj.delay[keep], proj.weight[keep], proj.scale
                )
            )
            source, source_index = proj.source, np.arange(graph.source_size(proj.source))
            for k in range(1, int(depth.max(initial=0)) + 1):
                needs = np.unique(proj.pre[depth >= k])
                name = f"relay.{layer.name}.{p_index}.{k}"
                layers.append(_relay_layer(name, len(needs), source, source_index[needs], hop, weight_step))
                added += len(needs)
                at_depth = depth == k
                relay_of = np.full(graph.source_size(proj.source), -1)
                relay_of[needs] = np.arange(len(needs))
                projections.append(
                    Projection(
                        name,
                        relay_of[proj.pre[at_depth]],
                        proj.post[at_depth],
                        proj.delay[at_depth] - k * hop,
                        proj.weight[at_depth],
                        proj.scale,
                    )
                )
                source, source_index = name, relay_of
        layer.projections = projections
        layers.append(layer)
    out.layers = layers
    return out, added
