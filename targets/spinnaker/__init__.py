"""SpiNNaker (through PyNN and sPyNNaker) and NEST: one target folder.

The profile (``spinnaker.toml``), the PyNN network file writer (``pynn_export``) with the standalone PyNN script
that runs it (``run_pynn.py``, shipped beside every exported file), the executor that runs that file in NEST
(``nest_executor``) with its runner (``nest_run.py``, run by the NEST environment's python) and the scripts that
build the NEST and sPyNNaker environments. The core finds all of it through ``PLUGIN`` (``delaynir.plugins``).
"""

from delaynir.export.executors import FLOAT_GRAPH, Companion, Executor, FileFormat
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
)

NEST = Executor(
    "nest",
    PYNN,
    "delaynir.targets.spinnaker.nest_executor",
    FLOAT_GRAPH,
    "targets/spinnaker/build_nest_env.sh (then DELAYNIR_NEST_PYTHON=<env>/bin/python)",
)

PLUGIN = TargetPlugin(
    name="spinnaker",
    description="SpiNNaker through PyNN / sPyNNaker, and NEST",
    package=__name__,
    profiles=("spinnaker.toml",),
    formats=(PYNN,),
    executors=(NEST,),
    environments={"nest": "build_nest_env.sh", "spynnaker": "build_spynnaker_env.sh"},
)
