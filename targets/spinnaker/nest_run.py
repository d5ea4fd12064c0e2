"""Run a delaynir PyNN network file in NEST through NEST's own API and record every population.

Runs INSIDE the NEST environment (targets/spinnaker/build_nest_env.sh); imports no delaynir, only the file
reader of ``run_pynn.py`` beside it.

    python nest_run.py NETWORK_FILE INPUT_NPZ OUTPUT_NPZ

INPUT_NPZ holds ``x`` (T, B, n_inputs): spike counts per step (a count above 1 is one spike of that multiplicity).
OUTPUT_NPZ holds, per population k of the file (0-based), ``s{k}`` (T, B, n) uint8 spikes of a lif population
and ``v{k}`` (T, B, n) float64 membrane of the li readout, in the population's units, at the DelayGraph's steps.

The mapping (docs/pynn-format.md; the measurements behind it: docs/research/NEST_NOTES.md): resolution h =
timestep_ms; lif → ``iaf_psc_delta`` with C_m = 1, E_L = V_reset = V_m = 0, t_ref = 0, V_min = −1e300,
V_th = nextafter(threshold, +inf) (NEST fires on V ≥ V_th, the DelayGraph on v > θ), tau_m from the file (the
exporter checked that NEST's propagator exp(−h/τ_m) is β exactly); li → the same with V_th = 1e300, its V
recorded by a multimeter; delta synapses (the weight is added to V), delays from the file; inputs and the
bias as ``spike_generator``s, the bias of population P at (t + lag(P)) · h with delay h and weight b_j.

The B samples run one after another in one kernel, the network built once: sample b's spikes are scheduled
at an offset of b · period steps, period = T + max lag + max delay. After its T + max lag steps every
threshold is raised to 1e300 for max-delay steps, so that every spike still in flight arrives without
causing new ones, then every V_m is set to 0 and the thresholds restored: each sample starts from zero
state, as a fresh kernel would (measured identical, NEST_NOTES Q6).
"""

import os
import sys

import numpy as np
from run_pynn import INPUT, READOUT_THRESHOLD, read_network

os.environ.setdefault("PYNEST_QUIET", "1")


#: iaf_psc_delta as the DelayGraph's lif: rest and reset at 0, no refractory time, no lower bound, unit capacity
NEUTRAL = {"E_L": 0.0, "V_m": 0.0, "V_reset": 0.0, "V_th": READOUT_THRESHOLD, "C_m": 1.0, "t_ref": 0.0, "V_min": -1e300}


def run(network, x):
    import nest

    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.set(resolution=network.timestep_ms, local_num_threads=1, print_time=False)
    h = network.timestep_ms
    T, B, n_in = x.shape
    lag, drain = network.max_lag, network.max_delay
    period = T + lag + drain
    flat = x.transpose(2, 1, 0).reshape(n_in, B * T)  # channel, (sample, step)
    inputs = nest.Create("spike_generator", n_in)
    for i in range(n_in):
        entries = np.flatnonzero(flat[i])
        if not len(entries):  # NEST cannot cast an empty list of multiplicities
            continue
        sample, step = np.divmod(entries, T)
        inputs[i].set(
            spike_times=((sample * period + step + 1) * h).tolist(),
            spike_multiplicities=flat[i, entries].astype(int).tolist(),
        )
    nodes = {INPUT: inputs}
    spiking, recorders = [], {}
    for k, pop in enumerate(network.populations):
        readout = pop.readout
        threshold = np.full(pop.size, READOUT_THRESHOLD) if readout else np.nextafter(pop.threshold, np.inf)
        # E_L first, in one call with a V_th above V_reset: NEST keeps V_th relative to E_L, so a V_th set before
        # E_L = 0 would pass through V_th − E_L(−70 mV) and lose the last bit that makes the comparison strict
        made = nest.Create("iaf_psc_delta", pop.size, params=NEUTRAL)
        made.set(tau_m=pop.tau_m.tolist(), V_th=threshold.tolist())
        nodes[pop.name] = made
        if readout:
            meter = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": h})
            nest.Connect(meter, made)
            recorders[k] = meter
        else:
            spiking.append((made, threshold.tolist()))
            recorder = nest.Create("spike_recorder")
            nest.Connect(made, recorder)
            recorders[k] = recorder
        if np.any(pop.bias != 0):
            times = (np.arange(B)[:, None] * period + np.arange(T)[None, :] + pop.lag) * h
            bias = nest.Create("spike_generator", params={"spike_times": times.reshape(-1).tolist()})
            nest.Connect(bias, made, "all_to_all", syn_spec={"weight": pop.bias[:, None], "delay": h})
    for proj in network.projections:
        if len(proj.pre):
            pre = np.asarray(nodes[proj.source].tolist())[proj.pre]
            post = np.asarray(nodes[proj.target].tolist())[proj.post]
            nest.Connect(
                pre, post, "one_to_one", syn_spec={"weight": proj.weight, "delay": proj.delay.astype(np.float64) * h}
            )
    for _ in range(B):
        nest.Simulate((T + lag) * h)
        for made, _ in spiking:
            made.set(V_th=READOUT_THRESHOLD)
        nest.Simulate(drain * h)
        for made in nodes.values():
            if made is not inputs:
                made.set(V_m=0.0)
        for made, threshold in spiking:
            made.set(V_th=threshold)
    out = {}
    for k, pop in enumerate(network.populations):
        events = recorders[k].events
        first = nodes[pop.name].tolist()[0]
        stamp = np.rint(np.asarray(events["times"]) / h).astype(np.int64)
        sample, local = (stamp - 1) // period, (stamp - 1) % period
        step = local - pop.lag
        keep = (step >= 0) & (step < T)
        neuron = np.asarray(events["senders"], dtype=np.int64) - first
        if pop.readout:
            v = np.zeros((T, B, pop.size))
            v[step[keep], sample[keep], neuron[keep]] = np.asarray(events["V_m"])[keep]
            out[f"v{k}"] = v
        else:
            s = np.zeros((T, B, pop.size), np.uint8)
            s[step[keep], sample[keep], neuron[keep]] = 1
            out[f"s{k}"] = s
    return out


def main():
    network_file, input_file, output_file = sys.argv[1:4]
    network = read_network(network_file)
    with np.load(input_file) as data:
        x = np.asarray(data["x"], dtype=np.float64)
    result = run(network, x)
    np.savez(output_file, **result)


if __name__ == "__main__":
    main()
