"""Run a netx file in Lava (CPU, bit-accurate fixed point) and record every layer's spikes and voltage.

Runs INSIDE the Lava environment (targets/loihi2/build_lava_env.sh); imports no delaynir.

    python lava_run.py NETX_FILE INPUT_NPZ OUTPUT_NPZ

INPUT_NPZ holds ``x`` (S, B, n_in) int32: per sample the S frames to feed (0/1 spikes, or integer
payloads when ``input_message_bits`` > 0), ``input_message_bits`` (0-d int) and ``bias_from``
(n_layers,) int: the step from which each netx layer's bias acts (its lag; before it the bias is 0,
so that a layer whose lag is L starts from zero state at step L). The network is built and compiled
once; the B samples run one after another, each for S steps from zero state (u, v of every neuron
and the delay buffers of every synapse set to 0 before it). Step k of a sample is the source's
column k (lava.proc.io.source.RingBuffer), Loihi2SimCfg(select_tag="fixed_pt"). Each projection in the
file's ``delaynir/layers/k/extra`` (recurrent and skip projections, which netx does not read) becomes a
DelayDense from its source's spikes (the input's for source 0) into layer k's neurons, its weights
optimised by netx's own ``optimize_weight_bits`` as netx does for a layer's ``weight``.

OUTPUT_NPZ holds, per netx layer k (1-based, as in the file), ``v{k}`` and ``s{k}``: (S, B, n) int64,
Lava's v (2^6 per weight unit) and spikes at every step.
"""

import argparse
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore", message=".*Prophesee.*")


def other_projections(netx_file):
    """[(k, source index, weight, delay)] for every projection in the file's ``delaynir/layers/k/extra``."""
    import h5py

    with h5py.File(netx_file, "r") as f:
        layers = f["delaynir/layers"]
        return [
            (int(k), int(e["source"][()]), e["weight"][()], e["delay"][()])
            for k in layers
            for e in layers[k].get("extra", {}).values()
        ]


def connect_other_projections(net, source, netx_file, input_message_bits):
    """A DelayDense per other projection (module docstring), connected; the list of them."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.proc.dense.process import DelayDense

    synapses = []
    for k, source_index, weight, delay in other_projections(netx_file):
        mantissa, weight_bits, exponent, _ = optimize_weight_bits(weight)
        synapse = DelayDense(
            weights=mantissa,
            delays=delay.astype(int),
            weight_exp=exponent,
            max_delay=62,
            num_weight_bits=weight_bits,
            num_message_bits=int(input_message_bits) if source_index == 0 else 0,
        )
        sender = source if source_index == 0 else net.layers[source_index - 1].neuron
        sender.s_out.connect(synapse.s_in)
        synapse.a_out.connect(net.layers[k - 1].neuron.a_in)
        synapses.append(synapse)
    return synapses


def run(netx_file, x, input_message_bits, bias_from):
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    steps, batch, n_in = x.shape
    net = netx.hdf5.Network(net_config=netx_file, input_message_bits=int(input_message_bits))
    frames = np.ascontiguousarray(x.transpose(2, 1, 0).reshape(n_in, batch * steps), dtype=np.int32)
    source = RingBuffer(data=frames)
    source.s_out.connect(net.inp)
    others = connect_other_projections(net, source, netx_file, input_message_bits)
    monitors = []
    for layer in net.layers:
        for var in (layer.neuron.v, layer.neuron.s_out):
            monitor = Monitor()
            monitor.probe(var, batch * steps)
            monitors.append(monitor)
    config = Loihi2SimCfg(select_tag="fixed_pt")
    biases = [np.array(layer.neuron.bias_mant.init, dtype=np.int32) for layer in net.layers]
    for layer, bias in zip(net.layers, biases):  # every lag is ≥ 1: no bias at step 0
        layer.neuron.bias_mant.init = np.zeros_like(bias)
    starts = sorted({min(int(k), steps) for k in bias_from} | {0, steps})
    zero_state = [
        var
        for layer in net.layers
        for var in (layer.neuron.u, layer.neuron.v, layer.synapse.a_buff, layer.neuron.bias_mant)
    ]
    zero_state += [synapse.a_buff for synapse in others]
    try:
        for b in range(batch):
            if b:  # the next sample from zero state, its biases off again
                for var in zero_state:
                    var.set(np.zeros(var.shape, dtype=np.int32))
            for start, stop in zip(starts[:-1], starts[1:]):  # each bias switched on at its layer's lag (≥ 1)
                for layer, bias, first in zip(net.layers, biases, bias_from):
                    if first == start:
                        layer.neuron.bias_mant.set(bias)
                net.run(condition=RunSteps(num_steps=stop - start), run_cfg=config)
        traces = []
        for monitor in monitors:
            (per_var,) = monitor.get_data().values()
            (trace,) = per_var.values()
            traces.append(np.asarray(trace, dtype=np.int64).reshape(batch, steps, -1).transpose(1, 0, 2))
    finally:
        net.stop()
    out = {}
    for k in range(len(net.layers)):
        out[f"v{k + 1}"], out[f"s{k + 1}"] = traces[2 * k], traces[2 * k + 1]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("netx_file")
    parser.add_argument("input_npz")
    parser.add_argument("output_npz")
    args = parser.parse_args(argv)  # a wrong call exits 2 with the usage
    data = np.load(args.input_npz)
    np.savez(args.output_npz, **run(args.netx_file, data["x"], data["input_message_bits"], data["bias_from"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
