"""Intel Loihi 2, through Lava: one target folder.

The profile (``loihi2.toml``), the ``loihi2-fixed`` arithmetic (``arithmetic``: Lava's bit-accurate
CUBA neuron), the netx writer (``netx``), the executor that runs netx files in Lava (``executor``) with its
runner script (``lava_run.py``, run by the Lava environment's python) and the script that builds that
environment (``build_lava_env.sh``); ``LAVA_NOTES.md`` records what was established in Lava. The core
finds all of it through ``PLUGIN`` (``delaynir.plugins``).
"""

from delaynir.export.executors import TARGET_ARITHMETIC, Executor, FileFormat
from delaynir.plugins import TargetPlugin

ARITHMETIC = "loihi2-fixed"  #: the arithmetic name a graph compiled for loihi2 records
BUILD_SCRIPT = "build_lava_env.sh"

NETX = FileFormat(
    "netx",
    "model.netx.h5",
    "delaynir.targets.loihi2.netx:export_netx",
    "the same graph as a lava-dl netx HDF5 network for Intel Lava / Loihi 2 (docs/netx-format.md)",
    partial=True,
)

LAVA = Executor(
    "lava",
    NETX,
    "delaynir.targets.loihi2.executor",
    TARGET_ARITHMETIC,
    f"targets/loihi2/{BUILD_SCRIPT} --profile netx (then DELAYNIR_LAVA_PYTHON=<env>/bin/python)",
    ARITHMETIC,
    other_arithmetics=False,
)

PLUGIN = TargetPlugin(
    name="loihi2",
    description="Intel Loihi 2 through Lava / lava-dl netx",
    package=__name__,
    profiles=("loihi2.toml",),
    arithmetics={ARITHMETIC: "delaynir.targets.loihi2.arithmetic:LOIHI2_FIXED"},
    formats=(NETX,),
    executors=(LAVA,),
    environments={"lava": BUILD_SCRIPT},
    default_profile="loihi2",
)
