"""Map a delaynir PyNN network file onto a virtual SpiNNaker board with sPyNNaker, and report what it used.

Runs INSIDE the sPyNNaker environment (targets/spinnaker/build_spynnaker_env.sh); imports no delaynir, only
``run_pynn.py`` beside it, whose ``build`` makes the same PyNN network a SpiNNaker user runs.

    python spynnaker_map.py NETWORK_FILE OUTPUT_JSON STEPS

The working directory holds the ``spynnaker.cfg`` that makes the board virtual (the caller makes it, and HOME, a
temporary directory). ``sim.run`` on a virtual board runs sPyNNaker's whole mapping (partitioning, placement,
routing, data specification) and simulates nothing. OUTPUT_JSON gets {"accepted": true, "chips", "cores",
"neuron_cores", "delay_extension_cores", "source_cores", "machine"} or {"accepted": false, "error": "module.Class:
message"} when sPyNNaker refuses the network.
"""

import contextlib
import json
import sys

from run_pynn import SPINNAKER, build, on, read_network, setup


def usage():
    """What the mapping used: chips and cores of the application (system cores left out)."""
    from spynnaker.pyNN.data import SpynnakerDataView
    from spynnaker.pyNN.models.neuron import PopulationMachineVertex, PopulationNeuronsMachineVertex
    from spynnaker.pyNN.models.utility_models.delays import DelayExtensionMachineVertex

    placed = [p for p in SpynnakerDataView.iterate_placemements() if p.vertex.app_vertex is not None]  # sic
    neuron = sum(isinstance(p.vertex, (PopulationMachineVertex, PopulationNeuronsMachineVertex)) for p in placed)
    delay = sum(isinstance(p.vertex, DelayExtensionMachineVertex) for p in placed)
    machine = SpynnakerDataView.get_machine()
    return {
        "chips": len({(p.x, p.y) for p in placed}),
        "cores": len(placed),
        "neuron_cores": neuron,
        "delay_extension_cores": delay,
        "source_cores": len(placed) - neuron - delay,
        "machine": f"{machine.n_chips} chips, {machine.total_cores} cores",
    }


def main():
    network_file, output_file, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    network = read_network(network_file)
    import pyNN.spiNNaker as sim

    setup(sim, network, on(SPINNAKER))
    try:
        build(sim, network, steps, on(SPINNAKER))
        sim.run(steps * network.timestep_ms)
        result = {"accepted": True, **usage()}
    except Exception as exc:  # sPyNNaker's refusal, in its own words
        result = {"accepted": False, "error": f"{type(exc).__module__}.{type(exc).__name__}: {exc}"}
    finally:
        with contextlib.suppress(Exception):  # after a failed mapping sPyNNaker may not end cleanly
            sim.end()
    with open(output_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
