"""Probe what Lava's netx and fixed-point CPU models compute (issue #14).

Runs INSIDE the Lava environment built by build_lava_env.sh; imports no
delaynir.  It writes small netx HDF5 files by hand, loads them with
``lava.lib.dl.netx.hdf5.Network``, drives them with known spikes from a
``RingBuffer`` source, runs ``Loihi2SimCfg(select_tag="fixed_pt")`` and
records spikes (sink RingBuffer on ``net.out``) and neuron state (``Monitor``
on ``net.layers[i].neuron.{u,v,s_out}``).

    python lava_probe.py OUT_DIR

writes OUT_DIR/*.h5 (the netx files), OUT_DIR/probe.npz (every recorded
array) and OUT_DIR/probe.json (the findings), and logs the findings.
Time is 0-based: the source emits column k of its data at step k (Lava's
time_step k + 1) and every recorded array is indexed the same way.
"""

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
from lava.lib.dl import netx
from lava.lib.dl.netx.utils import optimize_weight_bits
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from lava.proc.monitor.process import Monitor

log = logging.getLogger("lava_probe")

RELAY = {"iDecay": 4096, "vDecay": 4096, "vThMant": 1}  # v = u = a_in << 6
INTEGRATOR = {"iDecay": 4096, "vDecay": 0, "vThMant": 131071}  # v += a_in << 6


# --------------------------------------------------------------------- files
def write_netx(path, layers):
    """layers: dicts with type, shape and optionally weight, weight_rec,
    delay, bias, wgtExp and neuron (iDecay, vDecay, vThMant, ...), written the
    way lava-dl's slayer exporter writes them (type as a 1-element S10)."""
    with h5py.File(path, "w") as f:
        for i, spec in enumerate(layers):
            g = f.create_group(f"layer/{i}")
            g.create_dataset("type", (1,), "S10", [spec["type"].encode("ascii")])
            g.create_dataset("shape", data=np.asarray(spec["shape"]))
            for key in ("weight", "weight_rec", "delay", "bias", "wgtExp"):
                if key in spec:
                    g.create_dataset(key, data=np.asarray(spec[key]))
            if "neuron" in spec:
                n = g.create_group("neuron")
                n.create_dataset("type", (1,), "S10", [b"CUBA"])
                params = {"refDelay": 1, "gradedSpike": False, **spec["neuron"]}
                for key, value in params.items():
                    n.create_dataset(key, data=value)
    return str(path)


def dense(weight, neuron, delay=None, **extra):
    spec = {"type": "dense", "shape": [np.shape(weight)[0]], "weight": weight, "neuron": neuron, **extra}
    if delay is not None:
        spec["delay"] = delay
    return spec


def inp(n, neuron=None):
    spec = {"type": "input", "shape": [n]}
    if neuron is not None:
        spec["neuron"] = neuron
    return spec


# ----------------------------------------------------------------------- run
def run(path, spikes, probes=(), **net_kwargs):
    """Run the netx file on `spikes` (n_in, T) for T steps.  probes: (layer,
    var) pairs, var in u, v, s_out.  Returns (out spikes (n_out, T),
    {f"{layer}.{var}": (n, T)}, network)."""
    spikes = np.asarray(spikes, dtype=np.int32)
    steps = spikes.shape[1]
    net = netx.hdf5.Network(net_config=path, **net_kwargs)
    src = Source(data=spikes)
    sink = Sink(shape=net.out.shape, buffer=steps)
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    monitors = []
    for layer, var in probes:
        m = Monitor()
        m.probe(getattr(net.layers[layer].neuron, var), steps)
        monitors.append((layer, var, m))
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = sink.data.get().astype(np.int64)
        recorded = {}
        for layer, var, m in monitors:
            data = m.get_data()
            (per_var,) = data.values()
            (arr,) = per_var.values()
            recorded[f"{layer}.{var}"] = np.asarray(arr).T.astype(np.int64)
    finally:
        net.stop()
    return out, recorded, net


def times(row):
    return [int(t) for t in np.flatnonzero(row)]


def attempt(fn):
    """Run fn(); return its result or the exception's type and message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
            error = None
        except Exception as exc:
            result, error = None, f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("Lava raised %s", error, exc_info=True)
    return result, error, [str(w.message)[:200] for w in caught if "Prophesee" not in str(w.message)]


# --------------------------------------------------------------- experiments
def exp_latency(out_dir, arrays):
    """(a) An input spike at step t0 through a 2-D per-synapse delay d."""
    t0, steps = 2, 72
    delays = [0, 1, 5, 62]
    n = len(delays)
    spikes = np.zeros((n, steps), np.int32)
    spikes[:, t0] = 1
    eye = 127 * np.eye(n, dtype=int)
    result = {"t0": t0, "delays": delays}
    cases = {
        "delay_2d": [inp(n), dense(eye, RELAY, delay=np.diag(delays)), dense(eye, RELAY)],
        "no_delay_key": [inp(n), dense(eye, RELAY), dense(eye, RELAY)],
        "delay_all_zero": [inp(n), dense(eye, RELAY, delay=np.zeros((n, n))), dense(eye, RELAY)],
        "no_input_layer": [dense(eye, RELAY, delay=np.diag(delays)), dense(eye, RELAY)],
        # An input layer with a neuron group becomes an Input block (a LIF
        # whose a_in is left unconnected: the block's inp goes nowhere).
        "input_layer_with_neuron": [inp(n, RELAY), dense(eye, RELAY, delay=np.diag(delays)), dense(eye, RELAY)],
    }
    for name, layers in cases.items():
        path = write_netx(out_dir / f"latency_{name}.h5", layers)
        # netx makes no Lava block for an input layer without a neuron group
        first = 1 if layers[0]["type"] == "input" and "neuron" in layers[0] else 0
        probes = [(first, "s_out"), (first, "v")]

        def go():
            out, rec, net = run(path, spikes, probes)
            return out, rec, len(net.layers)

        res, err, warn = attempt(go)
        entry = {"error": err, "warnings": warn}
        if res is not None:
            out, rec, nlayers = res
            arrays[f"latency_{name}_out"] = out
            arrays[f"latency_{name}_hidden_s"] = rec[f"{first}.s_out"]
            entry.update(
                lava_layers=nlayers,
                hidden_spike_steps=[times(r) for r in rec[f"{first}.s_out"]],
                output_spike_steps=[times(r) for r in out],
            )
        result[name] = entry
    return result


def exp_weights(out_dir, arrays):
    """(b) Effective weight = (v step) / 64 with an integrating neuron:
    each input neuron j spikes once, at step 2 j."""
    rng = np.random.default_rng(0)
    cases = {
        "mixed_int8": np.array([[127, -128, 1, -1, 3, -77, 0, 100]]),
        "mixed_small": np.array([[5, -3, 1, -1, 2, 0, 4, -2]]),
        "mixed_odd_wide": np.array([[201, -3, 254, -256, 1, -255, 7, 99]]),
        "mixed_over": np.array([[300, -3, 254, -256, 1, -255, 7, 99]]),
        "excitatory": np.array([[255, 1, 128, 0, 77, 254, 3, 200]]),
        "nonpositive_with_zero": np.array([[-255, -1, -128, 0, -77, -256, -3, -200]]),
        "inhibitory_min_pow2": np.array([[-128, -1, -100, -5, -77, -64, -3, -2]]),
        "inhibitory_min_not_pow2": np.array([[-100, -4, -20, -8, -76, -60, -12, -2]]),
        "excitatory_over_255": np.array([[400, 3, 128, 0, 77, 254, 1, 200]]),
        "even_only": np.array([[2, -4, 8, -16, 6, 0, -2, 10]]),
        "fractional": np.array([[1.7, -1.7, 2.5, -2.5, 0.4, 0, 3, -3]]),
        "random_int8_4x8": rng.integers(-128, 128, (4, 8)),
    }
    result = {}
    for name, weight in cases.items():
        n_out, n_in = weight.shape
        steps = 2 * n_in + 2
        spikes = np.zeros((n_in, steps), np.int32)
        spikes[np.arange(n_in), 2 * np.arange(n_in)] = 1
        entry = {"file_weight": weight.tolist()}
        w_int = np.asarray(weight).astype(int)  # what NetDict reads
        w_opt, bits, exp, mode = optimize_weight_bits(w_int.copy())
        entry["netx_optimize_weight_bits"] = {
            "weight": w_opt.tolist(),
            "num_weight_bits": bits,
            "weight_exponent": exp,
            "sign_mode": mode.name,
        }
        for variant, extra in (
            ("dense", {}),
            ("delaydense", {"delay": np.zeros_like(w_int)}),
            ("wgtExp_2", {"wgtExp": 2}),
        ):
            path = write_netx(out_dir / f"weights_{name}_{variant}.h5", [inp(n_in), dense(weight, INTEGRATOR, **extra)])

            def go():
                return run(path, spikes, [(0, "v")])

            res, err, warn = attempt(go)
            sub = {"error": err, "warnings": warn}
            if res is not None:
                v = res[1]["0.v"]
                dv = np.diff(np.concatenate([np.zeros((n_out, 1), int), v], 1), axis=1)
                eff = dv[:, 2 * np.arange(n_in) + 1]
                arrays[f"weights_{name}_{variant}_v"] = v
                sub["effective_weight_x64"] = eff.tolist()
                sub["effective_weight"] = (eff / 64).tolist()
                sub["exact"] = bool(np.array_equal(eff, 64 * w_int))
            entry[variant] = sub
        result[name] = entry
    return result


def exp_neuron_keys(out_dir):
    """(c) What netx turns a neuron group into (LIF process parameters)."""
    result = {}
    for name, neuron, bias in (
        ("leaky", {"iDecay": 1024, "vDecay": 128, "vThMant": 80}, None),
        ("no_decay", {"iDecay": 0, "vDecay": 0, "vThMant": 1}, None),
        ("relay", RELAY, None),
        ("bias", {"iDecay": 4096, "vDecay": 0, "vThMant": 131071}, [5, -3]),
    ):
        extra = {} if bias is None else {"bias": bias}
        path = write_netx(out_dir / f"keys_{name}.h5", [inp(2), dense(np.eye(2, dtype=int), neuron, **extra)])
        net = netx.hdf5.Network(net_config=path)
        lif = net.layers[0].neuron
        entry = {"file_neuron": {k: int(v) for k, v in neuron.items()}, "lif_process": type(lif).__name__}
        for var in ("du", "dv", "vth", "bias_mant", "bias_exp"):
            value = np.asarray(getattr(lif, var).init)
            entry[var] = value.tolist()
        if bias is not None:
            steps = 4
            _out, rec, _ = run(path, np.zeros((2, steps), np.int32), [(0, "v")])
            entry["v_with_bias_no_input"] = rec["0.v"].tolist()
        result[name] = entry
    return result


def reference_lif(a_in, du, dv, vth, bias=0):
    """The fixed-point CUBA LIF as read in lava/proc/lif/models.py
    (AbstractPyLifModelFixed.subthr_dynamics + PyLifModelBitAcc), with
    a_in[:, t] the synaptic input received at step t."""
    n, steps = a_in.shape
    u = np.zeros(n, np.int64)
    v = np.zeros(n, np.int64)
    us, vs, ss = (np.zeros((n, steps), np.int64) for _ in range(3))
    half = 1 << 23
    for t in range(steps):
        x = u * (4096 - (du + 1))  # ds_offset = 1
        u = np.sign(x) * (np.abs(x) >> 12) + (a_in[:, t] << 6)
        u = np.where(u > half, u - 2 * half, u)  # wrap into (-2^23, 2^23]
        u = np.where(u <= -half, u + 2 * half, u)
        y = v * (4096 - dv)  # dm_offset = 0
        v = np.sign(y) * (np.abs(y) >> 12) + u + (bias << 6)
        v = np.clip(v, -(half - 1), half - 1)
        s = v > (vth << 6)
        v = np.where(s, 0, v)
        us[:, t], vs[:, t], ss[:, t] = u, v, s
    return us, vs, ss


def synaptic_input(weight, delay, spikes):
    """a_in[:, t] = sum_j w_ij s_j(t - d_ij - 1) (DelayDense, exact weights)."""
    n_out = weight.shape[0]
    steps = spikes.shape[1]
    a = np.zeros((n_out, steps), np.int64)
    for i in range(n_out):
        for j in range(weight.shape[1]):
            lag = int(delay[i, j]) + 1
            a[i, lag:] += weight[i, j] * spikes[j, : steps - lag]
    return a


def exp_equations(out_dir, arrays):
    """(d) Lava's u, v, s against reference_lif, step by step."""
    rng = np.random.default_rng(1)
    result = {}
    cases = []
    n_in, n_out, steps = 20, 6, 80
    w = rng.integers(-128, 128, (n_out, n_in))
    d = rng.integers(0, 12, (n_out, n_in))
    s = (rng.random((n_in, steps)) < 0.3).astype(np.int32)
    cases.append(("random_leaky", w, d, s, {"iDecay": 410, "vDecay": 205, "vThMant": 300}, None))
    cases.append(
        ("random_bias", w, d, s, {"iDecay": 1000, "vDecay": 3000, "vThMant": 200}, rng.integers(-20, 20, n_out))
    )
    # Wrap of u and saturation of v: 100 inputs all spiking, no decay.
    s_all = np.ones((100, 30), np.int32)
    cases.append(
        (
            "wrap_pos",
            np.full((2, 100), 127),
            np.zeros((2, 100), int),
            s_all,
            {"iDecay": 0, "vDecay": 0, "vThMant": 131071},
            None,
        )
    )
    w_neg = np.full((2, 100), -128)
    w_neg[1, 0] = 1  # one positive weight: an all-negative matrix hits (b)
    cases.append(
        (
            "wrap_neg_saturate",
            w_neg,
            np.zeros((2, 100), int),
            s_all,
            {"iDecay": 0, "vDecay": 0, "vThMant": 131071},
            None,
        )
    )
    # A synaptic sum beyond int16 (300 x 127 = 38100) in one step.
    s_one = np.zeros((300, 6), np.int32)
    s_one[:, 1] = 1
    cases.append(
        (
            "a_in_beyond_int16",
            np.full((1, 300), 127),
            np.zeros((1, 300), int),
            s_one,
            {"iDecay": 4096, "vDecay": 0, "vThMant": 131071},
            None,
        )
    )
    for name, w, d, s, neuron, bias in cases:
        extra = {} if bias is None else {"bias": bias}
        path = write_netx(out_dir / f"eq_{name}.h5", [inp(w.shape[1]), dense(w, neuron, delay=d, **extra)])
        res, err, warn = attempt(lambda: run(path, s, [(0, "u"), (0, "v"), (0, "s_out")]))
        entry = {"neuron": neuron, "error": err, "warnings": warn}
        if res is not None:
            _, rec, _ = res
            a_in = synaptic_input(w, d, s)
            ru, rv, rs = reference_lif(
                a_in, neuron["iDecay"] - 1, neuron["vDecay"], neuron["vThMant"], 0 if bias is None else np.asarray(bias)
            )
            for key, ref in (("u", ru), ("v", rv), ("s_out", rs)):
                got = rec[f"0.{key}"]
                arrays[f"eq_{name}_{key}"] = got
                arrays[f"eq_{name}_{key}_ref"] = ref
                entry[f"{key}_equal"] = bool(np.array_equal(got, ref))
                if not entry[f"{key}_equal"]:
                    i, t = np.argwhere(got != ref)[0]
                    entry[f"{key}_first_diff"] = {
                        "neuron": int(i),
                        "step": int(t),
                        "lava": int(got[i, t]),
                        "ref": int(ref[i, t]),
                    }
            entry["spikes"] = int(rec["0.s_out"].sum())
            entry["u_range"] = [int(rec["0.u"].min()), int(rec["0.u"].max())]
            entry["v_range"] = [int(rec["0.v"].min()), int(rec["0.v"].max())]
        result[name] = entry
    return result


def exp_delay_limits(out_dir):
    """(e) Delays beyond 62, negative, fractional."""
    result = {}
    t0, steps = 1, 90
    for name, dvals in (
        ("d62", [62, 0]),
        ("d63", [63, 0]),
        ("d80", [80, 0]),
        ("neg", [-1, 3]),
        ("neg_and_80", [-1, 80]),
        ("fractional", [2.7, 0.5]),
    ):
        delay = np.diag(dvals)
        spikes = np.zeros((2, steps), np.int32)
        spikes[:, t0] = 1
        path = write_netx(out_dir / f"delay_{name}.h5", [inp(2), dense(127 * np.eye(2, dtype=int), RELAY, delay=delay)])
        res, err, warn = attempt(lambda: run(path, spikes))
        entry = {"file_delays": dvals, "error": err, "warnings": warn}
        if res is not None:
            entry["output_spike_steps"] = [times(r) for r in res[0]]
            entry["effective_delay"] = [ts[0] - t0 - 1 if ts else None for ts in entry["output_spike_steps"]]
        result[name] = entry
    return result


def exp_recurrent(out_dir, arrays):
    """(f) dense_rec with and without a delay dataset."""
    result = {}
    steps = 12
    # 2 inputs -> 3 neurons; input 0 spikes at step 1.  Neuron 0 relays
    # input 0; neuron 0 excites neuron 1 recurrently (weight 100), neuron 1
    # excites neuron 2 (weight 60 -> threshold not reached: v read).
    w = np.array([[127, 0], [0, 0], [0, 0]])
    w_rec = np.array([[0, 0, 0], [100, 0, 0], [0, 60, 0]])
    neuron = {"iDecay": 4096, "vDecay": 4096, "vThMant": 90}
    spikes = np.zeros((2, steps), np.int32)
    spikes[0, 1] = 1
    for name, extra in (
        ("no_delay", {}),
        ("delay_ff_shape", {"delay": np.array([[2, 0], [0, 0], [0, 0]])}),
        ("delay_square_3x3_in3", {}),
    ):
        wf, s = w, spikes
        if name == "delay_square_3x3_in3":  # n_in == n so the delay fits both
            wf = np.array([[127, 0, 0], [0, 0, 0], [0, 0, 0]])
            s = np.zeros((3, steps), np.int32)
            s[0, 1] = 1
            extra = {"delay": np.array([[2, 0, 0], [3, 0, 0], [0, 0, 0]])}
        layers = [
            inp(wf.shape[1]),
            {"type": "dense_rec", "shape": [3], "weight": wf, "weight_rec": w_rec, "neuron": neuron, **extra},
        ]
        path = write_netx(out_dir / f"rec_{name}.h5", layers)
        res, err, warn = attempt(lambda: run(path, s, [(0, "s_out"), (0, "v")]))
        entry = {"error": err, "warnings": warn}
        if res is not None:
            _, rec, net = res
            arrays[f"rec_{name}_v"] = rec["0.v"]
            entry["spike_steps"] = [times(r) for r in rec["0.s_out"]]
            entry["v_over_64"] = (rec["0.v"] / 64).tolist()
            layer = net.layers[0]
            entry["synapse_types"] = [type(layer.synapse).__name__, type(layer.synapse_rec).__name__]
            entry["weight_exp"] = [
                layer.synapse.proc_params.get("weight_exp", 0),
                layer.synapse_rec.proc_params.get("weight_exp", 0),
            ]
        result[name] = entry
    return result


def exp_graded_input(out_dir):
    """Graded input: Network(input_message_bits=8) with integer payloads."""
    w = np.array([[3, -2]])
    steps = 6
    data = np.zeros((2, steps), np.int32)
    data[0, 1] = 5
    data[1, 3] = 7
    path = write_netx(out_dir / "graded.h5", [inp(2), dense(w, INTEGRATOR)])
    res, err, warn = attempt(lambda: run(path, data, [(0, "v")], input_message_bits=8))
    entry = {"payloads": {"input0_step1": 5, "input1_step3": 7}, "weight": w.tolist(), "error": err, "warnings": warn}
    if res is not None:
        entry["v_over_64"] = (res[1]["0.v"] / 64).tolist()
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args(argv).out_dir  # a wrong call exits 2 with the usage
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {}
    findings = {}
    for name, fn in (
        ("a_latency", lambda: exp_latency(out_dir, arrays)),
        ("b_weights", lambda: exp_weights(out_dir, arrays)),
        ("c_neuron_keys", lambda: exp_neuron_keys(out_dir)),
        ("d_equations", lambda: exp_equations(out_dir, arrays)),
        ("e_delay_limits", lambda: exp_delay_limits(out_dir)),
        ("f_recurrent", lambda: exp_recurrent(out_dir, arrays)),
        ("h_graded_input", lambda: exp_graded_input(out_dir)),
    ):
        try:
            findings[name] = fn()
        except Exception as exc:
            log.exception("%s failed", name)
            findings[name] = {"error": f"{type(exc).__name__}: {exc}"}
        log.info("%s %s", name, json.dumps(findings[name], default=str)[:3000])
    np.savez_compressed(out_dir / "probe.npz", **arrays)
    (out_dir / "probe.json").write_text(json.dumps(findings, indent=1, default=str))
    log.info("wrote %s and %s", out_dir / "probe.json", out_dir / "probe.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
