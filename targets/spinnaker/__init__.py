"""SpiNNaker (through PyNN and sPyNNaker) and NEST: one target folder.

The profile (``spinnaker.toml``), the PyNN network file writer (``pynn_export``) with the standalone PyNN script
that runs it (``run_pynn.py``, shipped beside every exported file), the executor that runs that file in NEST
(``nest_executor``) with its runner (``nest_run.py``, run by the NEST environment's python) and the scripts that
build the NEST and sPyNNaker environments. The core finds all of it through ``PLUGIN`` (``delaynir.plugins``).
"""

from delaynir.export.executors import FLOAT_GRAPH, Companion, Executor, FileFormat
from delaynir.export.tool_checks import ToolCheck
from delaynir.plugins import TargetPlugin

PYNN = FileFormat(
    "pynn",
    "model.pynn.h5",
    "delaynir.targets.spinnaker.pynn_export:export_pynn",
    "the same graph as a PyNN network file for sPyNNaker / SpiNNaker and NEST (docs/pynn-format.md)",
    partial=True,
    companions=(
        Companion(
            "run_pynn.py",
            __name__,
            "standalone PyNN script: runs model.pynn.h5 on SpiNNaker (sPyNNaker) or another PyNN backend",
        ),
    ),
    usage="""On SpiNNaker, with sPyNNaker installed and configured for the board (`~/.spynnaker.cfg`), run the test
vectors through the model and compare the result with `test_vectors.h5`'s `expected/` group:

```bash
pip install "spynnaker==1!7.4.1" h5py
python run_pynn.py model.pynn.h5 --inputs test_vectors.h5 --out spinnaker_result.h5
```

`run_pynn.py` builds the network with PyNN (`IF_curr_delta`, per-synapse delays, one spike source per
population for the bias) and writes every spiking population's spikes and the readout's membrane, time-first, in
the DelayGraph's steps. Any other PyNN backend runs it with `--simulator NAME`. delaynir checked this file spike
for spike in NEST (table above) and, where the bundle was checked for SpiNNaker, that sPyNNaker maps it onto a
board (`delaynir bundle --check`); on a board SpiNNaker computes in s16.15 fixed point, so its membranes differ
in the last bits and a membrane within one fixed-point step of its threshold may fire differently.
Mapping, layout and semantics: delaynir's docs/pynn-format.md.""",
)

NEST = Executor(
    "nest",
    PYNN,
    "delaynir.targets.spinnaker.nest_executor",
    FLOAT_GRAPH,
    "targets/spinnaker/build_nest_env.sh (then DELAYNIR_NEST_PYTHON=<env>/bin/python)",
)

SPYNNAKER_MAPPING = ToolCheck(
    "spynnaker",
    PYNN,
    "delaynir.targets.spinnaker.mapping",
    ("spinnaker",),
    "sPyNNaker maps the PyNN model onto a virtual SpiNNaker board (mapping only, no execution)",
)

PLUGIN = TargetPlugin(
    name="spinnaker",
    description="SpiNNaker through PyNN / sPyNNaker, and NEST",
    package=__name__,
    profiles=("spinnaker.toml",),
    formats=(PYNN,),
    executors=(NEST,),
    environments={"nest": "build_nest_env.sh", "spynnaker": "build_spynnaker_env.sh"},
    tool_checks=(SPYNNAKER_MAPPING,),
    fit_checks={"spinnaker": "delaynir.targets.spinnaker.fit:check"},
)
