"""Target profiles: built-ins, user profiles, validation errors, the fit check, the table."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from delaynir.errors import DelayNIRError, TargetError
from delaynir.hardware.fit import FitViolation, check_fit, max_model_delay, raise_if_misfit
from delaynir.hardware.profile import (
    LIMIT_KEYS,
    Limit,
    TargetProfile,
    builtin_target_names,
    list_targets,
    load_target,
    parse_target,
)
from delaynir.hardware.table import format_targets_table
from delaynir.ir.graph import DelayGraph, Layer, Projection
from delaynir.ir.neuron_kinds import NEURON_TYPES, RESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: docs/targets.md, "default when absent" (per_synapse_delays: true when max_delay > 0)
DOCUMENTED_DEFAULTS = {
    "weight_step": 1,
    "weight_symmetric": False,
    "weight_scale": "per-output-channel",
    "max_fan_in": math.inf,
    "max_neurons": math.inf,
    "max_neurons_per_layer": math.inf,
    "max_inputs": math.inf,
    "max_outputs": math.inf,
    "decay": "float",
    "max_decay_shift": math.inf,
    "state_bits": math.inf,
    "threshold_bits": math.inf,
    "arithmetic": "float64",
    "graded_input": False,
    "input_bits": math.inf,
    "neuron_types": ["lif", "cubalif", "li", "relay"],
    "resets": ["hard", "subtract"],
}
BUILTINS = ["float", "int8", "loihi2", "seneca", "spinnaker", "spinnaker2", "xylo-audio2"]
REPO = Path(__file__).resolve().parent.parent
LOIHI_BETA = 1 - 410 / 4096  # on the fixed12 grid


# --------------------------------------------------------------------------- helpers


def proj(source, pre, post, delay, weight=None, n_post=None, scale=None) -> Projection:
    pre = np.asarray(pre)
    n_post = n_post if n_post is not None else int(np.max(post)) + 1
    weight = np.full(len(pre), 2.0) if weight is None else weight
    scale = np.full(n_post, 0.01) if scale is None else scale
    return Projection(source=source, pre=pre, post=post, delay=delay, weight=weight, scale=scale)


def layer(name, size, projections, neuron="lif", beta=LOIHI_BETA, reset="hard", alpha=None) -> Layer:
    return Layer(
        name=name,
        size=size,
        neuron=neuron,
        beta=np.full(size, beta),
        threshold=np.ones(size),
        bias=np.zeros(size),
        projections=list(projections),
        reset=reset,
        alpha=None if alpha is None else np.full(size, alpha),
    )


def small_graph(**overrides) -> DelayGraph:
    """input(4) -> h(3, lif, recurrent) -> out(2, li); fits loihi2 as built."""
    h = layer(
        "h",
        3,
        [
            proj("input", [0, 1, 2, 3], [0, 1, 2, 0], [0, 10, 62, 5], [2, -256, 254, 0], 3),
            proj("h", [0, 1], [1, 2], [1, 63], [4, 6], 3),
        ],
    )
    out = layer("out", 2, [proj("h", [0, 1, 2], [0, 1, 1], [0, 1, 2], [8, -8, 100], 2)], neuron="li")
    kwargs = {"dt": 0.01, "n_inputs": 4, "layers": [h, out], "target": "loihi2"}
    kwargs.update(overrides)
    return DelayGraph(**kwargs)


def profile_text(name="custom", **limits) -> str:
    lines = [f'name = "{name}"', 'description = "test profile"', "format_version = 1", "", "[limits]"]
    limits.setdefault("weight_bits", 0)
    limits.setdefault("max_delay", "inf")
    for key, value in limits.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        elif isinstance(value, str) and value != "inf":
            text = f'"{value}"'
        else:
            text = str(value)
        lines.append(f'{key} = {{ value = {text}, source = "test", confirmed = true }}')
    return "\n".join(lines) + "\n"


def custom(**limits) -> TargetProfile:
    return parse_target(profile_text(**limits), source="custom.toml")


def by_limit(violations, limit):
    return [v for v in violations if v.limit == limit]


# --------------------------------------------------------------------------- built-ins


def test_builtins_load_sorted_with_a_source_for_every_limit():
    profiles = list_targets()
    assert [p.name for p in profiles] == BUILTINS == builtin_target_names()
    for p in profiles:
        assert isinstance(p, TargetProfile)
        assert p.description and Path(p.path).name == f"{p.name}.toml"
        assert {"weight_bits", "max_delay"} <= set(p.limits)
        for key, limit in p.limits.items():
            assert key in LIMIT_KEYS
            assert isinstance(limit, Limit) and limit.source.strip(), (p.name, key)
            assert isinstance(limit.confirmed, bool)
        # every convenience property gives the value the file writes, else docs/targets.md's default
        written = {key: entry["value"] for key, entry in tomllib.loads(Path(p.path).read_text())["limits"].items()}
        expected = {**DOCUMENTED_DEFAULTS, "per_synapse_delays": written["max_delay"] > 0, **written}
        assert set(expected) == set(LIMIT_KEYS), p.name
        for key in LIMIT_KEYS:
            value = getattr(p, key)
            if key in ("neuron_types", "resets"):
                assert isinstance(value, tuple) and set(value) == set(expected[key]), (p.name, key)
            else:
                assert value == expected[key] and type(value) is type(expected[key]), (p.name, key, value)


def test_loihi2_limits():
    p = load_target("loihi2")
    assert p.weight_range() == (-256, 254)
    assert (p.weight_bits, p.weight_step, p.weight_scale) == (9, 2, "per-layer")
    assert p.max_delay == 62 and p.per_synapse_delays is True
    assert p.decay == "fixed12" and p.state_bits == 24 and p.threshold_bits == 17
    assert p.resets == ("hard",)
    assert p.quantises_weights
    assert math.isinf(p.max_fan_in)  # not in the public sources: no limit checked


def test_xylo_limits():
    p = load_target("xylo-audio2")
    assert (p.max_inputs, p.max_outputs, p.max_neurons) == (16, 8, 1008)
    assert p.max_delay == 0 and p.per_synapse_delays is False
    assert (p.decay, p.max_decay_shift) == ("bitshift", 15)
    assert p.weight_range() == (-128, 127)
    assert (p.state_bits, p.threshold_bits) == (16, 16)


def test_float_int8_spinnaker_seneca():
    f = load_target("float")
    assert f.weight_bits == 0 and not f.quantises_weights and f.weight_range() == (-math.inf, math.inf)
    assert math.isinf(f.max_delay) and f.decay == "float"
    assert set(f.neuron_types) == set(NEURON_TYPES) and set(f.resets) == set(RESETS)
    i8 = load_target("int8")
    assert i8.weight_range() == (-128, 127) and math.isinf(i8.max_delay) and i8.decay == "float"
    s2 = load_target("spinnaker2")
    assert s2.weight_range() == (-15, 15) and s2.max_delay == 8
    for key in ("weight_bits", "weight_symmetric", "max_delay", "per_synapse_delays"):
        assert s2.limits[key].confirmed is False and not s2.confirmed(key)
    seneca = load_target("seneca")
    assert seneca.max_delay == 0
    assert all(not limit.confirmed for limit in seneca.limits.values())


def test_to_dict_is_strict_json():
    for p in list_targets():
        d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
        assert d["name"] == p.name and set(d["limits"]) == set(p.limits)
        assert set(LIMIT_KEYS) <= set(d["effective"])
    d = load_target("float").to_dict()
    assert d["effective"]["max_delay"] is None and d["limits"]["max_delay"]["value"] is None
    assert load_target("loihi2").to_dict()["effective"]["weight_range"] == [-256, 254]


def test_unknown_target_lists_builtins():
    with pytest.raises(TargetError) as info:
        load_target("loihi3")
    assert isinstance(info.value, DelayNIRError)
    message = str(info.value)
    assert "'loihi3'" in message and all(name in message for name in BUILTINS)


def test_missing_user_file(tmp_path):
    with pytest.raises(TargetError, match="does not exist"):
        load_target(str(tmp_path / "nope.toml"))


# --------------------------------------------------------------------------- user profiles


def test_user_profile_loads_with_defaults(tmp_path):
    path = tmp_path / "mychip.toml"
    path.write_text(
        'name = "mychip"\ndescription = "a test chip"\nformat_version = 1\n\n[limits]\n'
        'weight_bits = { value = 6, source = "datasheet p. 3", confirmed = true }\n'
        'weight_step = { value = 4, source = "datasheet p. 3", confirmed = true }\n'
        'max_delay = { value = 15, source = "datasheet p. 7", confirmed = false, note = "per axon" }\n'
        'per_synapse_delays = { value = false, source = "datasheet p. 7", confirmed = true }\n'
        'max_fan_in = { value = inf, source = "datasheet", confirmed = true }\n'
        'decay = { value = "bitshift", source = "datasheet", confirmed = true }\n'
    )
    for arg in (str(path), path):
        p = load_target(arg)
        assert p.name == "mychip" and p.path == str(path)
        assert p.weight_range() == (-32, 28)
        assert p.max_delay == 15 and not p.confirmed("max_delay") and p.limits["max_delay"].note == "per axon"
        assert p.per_synapse_delays is False and math.isinf(p.max_fan_in)
        assert p.weight_scale == "per-output-channel" and math.isinf(p.max_decay_shift)
        assert p.neuron_types == NEURON_TYPES and p.resets == RESETS


def test_per_synapse_delays_default_follows_max_delay():
    assert custom(max_delay=5).per_synapse_delays is True
    assert custom(max_delay=0).per_synapse_delays is False


GOOD = (
    'name = "bad"\ndescription = "d"\nformat_version = 1\n[limits]\n'
    'weight_bits = { value = 8, source = "s", confirmed = true }\n'
    'max_delay = { value = 10, source = "s", confirmed = true }\n'
)

MALFORMED = {
    "unknown top-level key": ("top", "vendor", 'vendor = "x"\n'),
    "unknown limit": (
        "limits",
        "limits.max_synapses",
        'max_synapses = { value = 1, source = "s", confirmed = true }\n',
    ),
    "missing source": ("limits", "limits.max_fan_in.source", "max_fan_in = { value = 4, confirmed = true }\n"),
    "empty source": (
        "limits",
        "limits.max_fan_in.source",
        'max_fan_in = { value = 4, source = " ", confirmed = true }\n',
    ),
    "missing value": ("limits", "limits.max_fan_in.value", 'max_fan_in = { source = "s", confirmed = true }\n'),
    "wrong type": (
        "limits",
        "limits.max_neurons.value",
        'max_neurons = { value = "100", source = "s", confirmed = true }\n',
    ),
    "float not inf": (
        "limits",
        "limits.max_neurons.value",
        'max_neurons = { value = 1.5, source = "s", confirmed = true }\n',
    ),
    "negative inf": (
        "limits",
        "limits.max_inputs.value",
        'max_inputs = { value = -inf, source = "s", confirmed = true }\n',
    ),
    "out of range": (
        "limits",
        "limits.max_outputs.value",
        'max_outputs = { value = 0, source = "s", confirmed = true }\n',
    ),
    "bool as int": (
        "limits",
        "limits.state_bits.value",
        'state_bits = { value = true, source = "s", confirmed = true }\n',
    ),
    "unknown decay": (
        "limits",
        "limits.decay.value",
        'decay = { value = "exponential", source = "s", confirmed = true }\n',
    ),
    "unknown scale": (
        "limits",
        "limits.weight_scale.value",
        'weight_scale = { value = "per-tensor", source = "s", confirmed = true }\n',
    ),
    "unknown neuron type": (
        "limits",
        "limits.neuron_types.value",
        'neuron_types = { value = ["lif", "izhikevich"], source = "s", confirmed = true }\n',
    ),
    "confirmed not bool": (
        "limits",
        "limits.max_fan_in.confirmed",
        'max_fan_in = { value = 4, source = "s", confirmed = "yes" }\n',
    ),
    "not a table": ("limits", "limits.max_fan_in", "max_fan_in = 4\n"),
    "unknown entry key": (
        "limits",
        "limits.max_fan_in.unit",
        'max_fan_in = { value = 4, source = "s", confirmed = true, unit = "n" }\n',
    ),
    "shift without bitshift": (
        "limits",
        "limits.max_decay_shift",
        'max_decay_shift = { value = 4, source = "s", confirmed = true }\n',
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_profile_names_file_and_key(tmp_path, case):
    where, key, extra = MALFORMED[case]
    text = extra + GOOD if where == "top" else GOOD + extra
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError) as info:
        load_target(str(path))
    message = str(info.value)
    assert str(path) in message and key in message, message


@pytest.mark.parametrize(
    "text, key",
    [
        (GOOD.replace("weight_bits = { value = 8,", "weight_bits = { value = 1,"), "limits.weight_bits.value"),
        (GOOD.replace("max_delay = { value = 10,", "max_delay = { value = -1,"), "limits.max_delay.value"),
        (GOOD.replace('weight_bits = { value = 8, source = "s", confirmed = true }\n', ""), "limits.weight_bits"),
        (GOOD.replace("format_version = 1", "format_version = 2"), "format_version"),
        (GOOD.replace('name = "bad"\n', ""), "name"),
        (GOOD.replace("[limits]", "[limitz]"), "[limits]"),
        (GOOD + 'weight_step = { value = 200, source = "s", confirmed = true }\n', "limits.weight_step"),
        (
            GOOD.replace("weight_bits = { value = 8,", "weight_bits = { value = 0,")
            + 'weight_step = { value = 2, source = "s", confirmed = true }\n',
            "limits.weight_step",
        ),
        (
            GOOD.replace("max_delay = { value = 10,", "max_delay = { value = 0,")
            + 'per_synapse_delays = { value = true, source = "s", confirmed = true }\n',
            "limits.per_synapse_delays",
        ),
    ],
)
def test_more_malformed_profiles(text, key):
    with pytest.raises(TargetError) as info:
        parse_target(text, source="chip.toml")
    assert "chip.toml" in str(info.value) and key in str(info.value)


def test_invalid_toml_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(TargetError, match="not valid TOML") as info:
        load_target(str(path))
    assert str(path) in str(info.value)


def test_all_problems_reported_at_once(tmp_path):
    path = tmp_path / "many.toml"
    path.write_text(
        'name = "many"\ndescription = "d"\nformat_version = 1\ncolour = "blue"\n[limits]\n'
        "weight_bits = { value = 8, confirmed = true }\n"
        'max_delay = { value = -3, source = "s", confirmed = true }\n'
        'decay = { value = "exp", source = "s", confirmed = true }\n'
        'fan_in = { value = 4, source = "s", confirmed = true }\n'
        'resets = { value = ["soft"], source = "s", confirmed = 1 }\n'
    )
    with pytest.raises(TargetError) as info:
        load_target(str(path))
    message = str(info.value)
    expected = [
        "colour",
        "limits.weight_bits.source",
        "limits.max_delay.value",
        "limits.decay.value",
        "limits.fan_in",
        "limits.resets.value",
        "limits.resets.confirmed",
    ]
    for key in expected:
        assert key in message, key
    assert "7 problems" in message
    assert message.count(str(path)) >= len(expected)


# --------------------------------------------------------------------------- fit check


def test_fitting_graph_has_no_violations():
    graph = small_graph()
    for name in ("loihi2", "float"):
        assert check_fit(graph, load_target(name)) == [], name
    # the same weights do not fit int8 (-256 and 254 lie outside [-128, 127])
    assert [(v.limit, v.count) for v in check_fit(graph, load_target("int8"))] == [("weight_bits", 2)]
    raise_if_misfit(graph, load_target("loihi2"))  # no exception


def test_delays_above_max_delay():
    h = layer("h", 3, [proj("input", [0, 1, 2, 3, 0], [0, 1, 2, 0, 1], [0, 5, 63, 70, 70], [2] * 5, 3)])
    graph = DelayGraph(dt=0.01, n_inputs=4, layers=[h])
    (v,) = check_fit(graph, load_target("loihi2"))
    assert (v.layer, v.limit, v.found, v.allowed, v.count, v.projection) == ("h", "max_delay", 70, 62, 3, "input")
    assert "'h'" in v.message and "3 of 5 synapses" in v.message and "8 too many" in v.message
    assert "--fit clip-delays" in v.message and "--fit relay-neurons" in v.message


def test_recurrent_delays_count_the_recurrence_step():
    assert max_model_delay(load_target("loihi2"), recurrent=True) == 63
    ok = small_graph()  # the recurrent projection h -> h carries a delay of 63
    assert by_limit(check_fit(ok, load_target("loihi2")), "max_delay") == []
    ok.layers[0].projections[1].delay[1] = 64
    (v,) = by_limit(check_fit(ok, load_target("loihi2")), "max_delay")
    assert (v.projection, v.found, v.allowed, v.count) == ("h", 64, 63, 1)
    # on a chip without delays a recurrent delay of 1 fits, a feed-forward delay of 1 does not
    xylo = load_target("xylo-audio2")
    rec = layer("h", 2, [proj("input", [0, 1], [0, 1], [0, 1]), proj("h", [0, 1], [1, 0], [1, 1])])
    (v,) = by_limit(check_fit(DelayGraph(dt=0.01, n_inputs=2, layers=[rec]), xylo), "max_delay")
    assert (v.projection, v.count, v.found, v.allowed) == ("input", 1, 1, 0)
    assert "no programmable delays" in v.message
    assert "--fit relay-neurons" not in v.message  # relays need a delay per hop: not offered here


def test_per_synapse_delays_on_a_target_without_them():
    profile = custom(max_delay=10, per_synapse_delays=False)
    h = layer("h", 3, [proj("input", [0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 2, 0], [1, 4, 3, 3, 2, 9])])
    (v,) = check_fit(DelayGraph(dt=0.01, n_inputs=3, layers=[h]), profile)
    assert (v.limit, v.count, v.found, v.layer, v.projection) == ("per_synapse_delays", 2, 2, "h", "input")
    assert "up to 7 steps" in v.message
    assert check_fit(DelayGraph(dt=0.01, n_inputs=3, layers=[h]), custom(max_delay=10)) == []


def test_fan_in_counts_synapses_over_all_projections():
    h = layer(
        "h",
        4,
        [
            proj("input", [0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 1, 1, 1, 2], [0] * 7, n_post=4),
            proj("h", [1, 2, 3, 0], [0, 0, 1, 3], [1] * 4, n_post=4),
        ],
    )
    (v,) = check_fit(DelayGraph(dt=0.01, n_inputs=4, layers=[h]), custom(max_fan_in=3))
    assert (v.limit, v.layer, v.found, v.allowed, v.count) == ("max_fan_in", "h", 5, 3, 2)
    assert "2 of 4 neurons" in v.message and "2 too many" in v.message
    assert check_fit(DelayGraph(dt=0.01, n_inputs=4, layers=[h]), custom(max_fan_in=5)) == []


def test_neuron_counts_inputs_outputs_on_xylo():
    hidden = layer("h", 1000, [proj("input", [0, 19], [0, 999], [0, 0], n_post=1000)], beta=0.5)
    out = layer("out", 16, [proj("h", [0], [15], [0], n_post=16)], beta=0.5, reset="subtract")
    hidden.reset = "subtract"
    graph = DelayGraph(dt=0.01, n_inputs=20, layers=[hidden, out])
    violations = check_fit(graph, load_target("xylo-audio2"))
    found = {v.limit: (v.layer, v.found, v.allowed) for v in violations}
    assert found == {"max_neurons": (None, 1016, 1008), "max_inputs": (None, 20, 16), "max_outputs": (None, 16, 8)}
    assert "8 more" in by_limit(violations, "max_neurons")[0].message
    (v,) = check_fit(graph, custom(max_neurons_per_layer=500))
    assert (v.limit, v.layer, v.found, v.allowed) == ("max_neurons_per_layer", "h", 1000, 500)


def test_weights_grid_and_range_on_loihi2():
    h = layer("h", 1, [proj("input", [0] * 6, [0] * 6, [0] * 6, [2.5, 3, 300, -258, 4, -256])])
    violations = check_fit(DelayGraph(dt=0.01, n_inputs=1, layers=[h]), load_target("loihi2"))
    assert sorted((v.limit, v.count) for v in violations) == [
        ("weight_bits", 1),
        ("weight_bits", 2),
        ("weight_step", 1),
    ]
    not_int = next(v for v in violations if v.limit == "weight_bits" and v.count == 1)
    assert not_int.found == 2.5 and "not integers" in not_int.message
    rng = next(v for v in violations if v.limit == "weight_bits" and v.count == 2)
    assert rng.found == 300 and rng.allowed == (-256, 254) and "46 beyond" in rng.message
    assert next(v for v in violations if v.limit == "weight_step").found == 3
    # float targets do not look at weights
    assert check_fit(DelayGraph(dt=0.01, n_inputs=1, layers=[h]), load_target("float")) == []


def test_per_layer_weight_scale():
    h = layer("h", 2, [proj("input", [0, 0], [0, 1], [0, 0], [2, 4], scale=np.array([0.5, 0.25]))])
    (v,) = check_fit(DelayGraph(dt=0.01, n_inputs=1, layers=[h]), load_target("loihi2"))
    assert (v.limit, v.found, v.allowed) == ("weight_scale", 2, 1)
    assert check_fit(DelayGraph(dt=0.01, n_inputs=1, layers=[h]), load_target("int8")) == []


def test_neuron_types_and_resets():
    cuba = layer("c", 2, [proj("input", [0], [0], [0])], neuron="cubalif", reset="subtract", alpha=0.5)
    readout = layer("r", 2, [proj("c", [0], [1], [0])], neuron="li", reset="subtract")  # li has no reset
    graph = DelayGraph(dt=0.01, n_inputs=1, layers=[cuba, readout])
    violations = check_fit(graph, custom(neuron_types=["lif", "li"], resets=["hard"]))
    assert sorted((v.limit, v.layer, v.found) for v in violations) == [
        ("neuron_types", "c", "cubalif"),
        ("resets", "c", "subtract"),
    ]
    assert check_fit(graph, custom()) == []


def test_decay_representability():
    lif = layer("h", 3, [proj("input", [0], [0], [0])], beta=0.9)
    graph = DelayGraph(dt=0.01, n_inputs=1, layers=[lif])
    (v,) = check_fit(graph, load_target("loihi2"))
    assert (v.limit, v.count, v.found) == ("decay", 3, 0.9) and "4096" in v.message
    lif.beta[:] = 1 - 2.0**-4  # bitshift k = 4
    assert check_fit(graph, custom(decay="bitshift", max_decay_shift=15)) == []
    lif.beta[0] = 1 - 2.0**-16
    (v,) = check_fit(graph, custom(decay="bitshift", max_decay_shift=15))
    assert (v.limit, v.count) == ("decay", 1)
    cuba = layer("c", 2, [proj("input", [0], [0], [0])], neuron="cubalif", beta=LOIHI_BETA, alpha=0.3)
    (v,) = check_fit(DelayGraph(dt=0.01, n_inputs=1, layers=[cuba]), load_target("loihi2"))
    assert v.limit == "decay" and "synaptic decay" in v.message


def test_every_violation_is_reported_and_raised_together():
    h = layer("h", 3, [proj("input", [0, 1, 2], [0, 0, 1], [0, 3, 80], [1.5, 2, 4])], beta=0.9)
    graph = DelayGraph(dt=0.01, n_inputs=3, layers=[h])
    violations = check_fit(graph, load_target("loihi2"))
    assert {v.limit for v in violations} == {"max_delay", "weight_bits", "decay"}
    assert all(isinstance(v, FitViolation) for v in violations)
    assert all(json.dumps(v.to_dict(), allow_nan=False) for v in violations)
    with pytest.raises(TargetError) as info:
        raise_if_misfit(graph, load_target("loihi2"))
    message = str(info.value)
    assert message.startswith("model does not fit target loihi2:")
    assert all(v.message in message for v in violations)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    bits=st.integers(2, 12),
    step=st.integers(1, 8),
    symmetric=st.booleans(),
    weights=st.lists(st.integers(-5000, 5000), min_size=1, max_size=30),
)
def test_weight_checks_match_brute_force(bits, step, symmetric, weights):
    half = 2 ** (bits - 1)
    assume(step < half)
    profile = custom(weight_bits=bits, weight_step=step, weight_symmetric=symmetric)
    values = [w for w in range(-half, half) if w % step == 0 and (not symmetric or w >= -(half - 1))]
    assert profile.weight_range() == (min(values), max(values))
    n = len(weights)
    h = layer("h", 1, [proj("input", [0] * n, [0] * n, [0] * n, np.array(weights, dtype=float))])
    violations = check_fit(DelayGraph(dt=0.01, n_inputs=1, layers=[h]), profile)
    counts = {v.limit: v.count for v in violations}
    lo, hi = min(values), max(values)
    assert counts.get("weight_bits", 0) == sum(not lo <= w <= hi for w in weights)
    assert counts.get("weight_step", 0) == sum(w % step != 0 for w in weights)


# --------------------------------------------------------------------------- table and docs


def test_table_lists_all_builtins_and_marks_unconfirmed():
    table = format_targets_table(list_targets())
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    for name in BUILTINS:
        assert name in rows
    assert "?" in rows["spinnaker2"] and "?" in rows["seneca"]
    assert "int9 [-256, 254] step 2" in rows["loihi2"] and "0-62" in rows["loihi2"]
    assert "in 16" in rows["xylo-audio2"] and "out 8" in rows["xylo-audio2"]
    assert "?" not in rows["loihi2"].split("0-62")[0]


def test_docs_list_every_builtin():
    docs = (REPO / "docs" / "targets.md").read_text()
    for name in BUILTINS:
        assert f"`{name}`" in docs, name
    for key in LIMIT_KEYS:
        assert f"`{key}`" in docs, key
