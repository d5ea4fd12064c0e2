"""The table of target profiles that ``delaynir targets`` prints (a "?" marks a limit whose source
does not confirm it)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from delaynir import plugins
from delaynir.hardware.profile import TargetProfile


def _cell(profile: TargetProfile, keys: Iterable[str], text: str) -> str:
    return text + ("?" if any(not profile.confirmed(k) for k in keys) else "")


def _limit_text(value: Any) -> str:
    return "-" if isinstance(value, float) and math.isinf(value) else str(value)


def _columns(p: TargetProfile) -> list[str]:
    if p.quantises_weights:
        lo, hi = p.weight_range()
        weights = f"int{p.weight_bits} [{lo}, {hi}]" + (f" step {p.weight_step}" if p.weight_step > 1 else "")
    else:
        weights = "float"
    weights = _cell(p, ("weight_bits", "weight_step", "weight_symmetric"), weights)
    if p.max_delay == 0:
        delays = "none"
    else:
        delays = "any" if math.isinf(p.max_delay) else f"0-{p.max_delay}"
        delays += " per synapse" if p.per_synapse_delays else " per source"
    delays = _cell(p, ("max_delay", "per_synapse_delays"), delays)
    fan_in = _cell(p, ("max_fan_in",), _limit_text(p.max_fan_in))
    neurons = _limit_text(p.max_neurons)
    extras = [
        f"{label} {_limit_text(v)}"
        for label, v in (("in", p.max_inputs), ("out", p.max_outputs), ("per layer", p.max_neurons_per_layer))
        if not math.isinf(v)
    ]
    if extras:
        neurons += f" ({', '.join(extras)})"
    neurons = _cell(p, ("max_neurons", "max_inputs", "max_outputs", "max_neurons_per_layer"), neurons)
    decay = p.decay
    if decay == "bitshift" and not math.isinf(p.max_decay_shift):
        decay += f" k<={p.max_decay_shift}"
    decay = _cell(p, ("decay", "max_decay_shift"), decay)
    graded = (
        "spikes" if not p.graded_input else "graded " + ("float" if math.isinf(p.input_bits) else f"{p.input_bits}-bit")
    )
    graded = _cell(p, ("graded_input", "input_bits"), graded)
    return [p.name, weights, delays, fan_in, neurons, decay, graded]


def format_targets_table(profiles: Iterable[TargetProfile]) -> str:
    """The human table of ``delaynir targets``: one row per profile; '?' marks a value whose
    source does not confirm it, '-' means no limit."""
    header = ["name", "weights", "delays (steps)", "fan-in", "neurons", "decay", "input"]
    rows = [_columns(p) for p in profiles]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    out.append("")
    out.append(
        "? = not confirmed by a public source; - = no limit. Sources: delaynir targets --json, or docs/targets.md"
    )
    return "\n".join(out)


def format_target_packages() -> str:
    """What each installed target package brings (delaynir.plugins): profiles, arithmetics, export formats,
    executors, vendor tool checks, fit checks of its own and the scripts that build their tools' environments."""
    lines = ["target packages (docs/targets.md, 'A target package'):"]
    for p in plugins.plugins():
        lines.append(f"  {p.name}: {p.description} ({p.package})")
        parts = [
            ("profiles", ", ".join(p.profile_files())),
            ("arithmetics", ", ".join(p.arithmetics)),
            ("export formats", ", ".join(f.name for f in p.formats)),
            ("executors", ", ".join(e.name for e in p.executors)),
            ("tool checks (delaynir map)", "; ".join(f"{c.name}: {c.description}" for c in p.tool_checks)),
            ("own fit checks", ", ".join(p.fit_checks)),
        ]
        lines += [f"    {label}: {value}" for label, value in parts if value]
        lines += [f"    {tool} environment: {p.environment_script(tool)}" for tool in p.environments]
    return "\n".join(lines) if len(lines) > 1 else "no target packages installed"
