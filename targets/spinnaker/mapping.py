"""The SpiNNaker mapping check: sPyNNaker maps a PyNN network file onto a virtual SpiNNaker 1 board
(``delaynir.export.tool_checks``; ``delaynir map``, ``bundle``, ``bundle --check``).

sPyNNaker 1!7.4.1 lives in its own environment (``targets/spinnaker/build_spynnaker_env.sh``) and runs in a
subprocess: ``spynnaker_map.py``, executed by that environment's python (``$DELAYNIR_SPYNNAKER_PYTHON``, else
``bin/python`` of ``$SPYNNAKER_ENV``, else of ``~/.cache/delaynir/spynnaker-env``), in a temporary directory that is
also its HOME, with a ``spynnaker.cfg`` for one virtual SpiNN-5 board (48 chips): nothing of the user's
configuration is read and nothing is written outside it. This checks that sPyNNaker's own tools accept the model
for a board and what they use; it does not execute the model (a virtual board simulates nothing).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from delaynir.export.tool_checks import ToolRefused
from delaynir.export.tool_env import ToolEnvironment

log = logging.getLogger(__name__)

RUNNER = Path(__file__).resolve().parent / "spynnaker_map.py"
ENVIRONMENT = ToolEnvironment(
    "spynnaker",
    "sPyNNaker",
    "DELAYNIR_SPYNNAKER_PYTHON",
    "SPYNNAKER_ENV",
    "spynnaker-env",
    "targets/spinnaker/build_spynnaker_env.sh",
)
#: one SpiNN-5 board (version 5 is the 48-chip board; width and height fix the machine, so a model that needs more
#: chips is refused instead of being given more boards), virtual: nothing is loaded or run
CONFIG = "[Machine]\nvirtual_board = True\nversion = 5\nwidth = 8\nheight = 8\n"
STEPS = 10  #: steps of the virtual run (the mapping does not depend on them)
NOTE = "mapped by sPyNNaker 1!7.4.1 onto a virtual SpiNN-5 board: the tool accepts it; nothing was executed"


def check(path: Path) -> dict[str, Any]:
    """sPyNNaker's mapping of the network file at ``path``: chips and cores used; ToolRefused with sPyNNaker's
    words when it refuses, ExecutorUnavailable without its environment."""
    with tempfile.TemporaryDirectory(prefix="delaynir-spynnaker-") as tmp:
        for name in (".spynnaker.cfg", "spynnaker.cfg"):
            (Path(tmp) / name).write_text(CONFIG)
        out = Path(tmp) / "mapping.json"
        home = {"HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/.config", "MPLCONFIGDIR": tmp, "MPLBACKEND": "Agg"}
        log.info("mapping %s onto a virtual SpiNNaker board", path)
        ENVIRONMENT.run(RUNNER, [str(path), str(out), str(STEPS)], "map the PyNN network file", cwd=Path(tmp), env=home)
        result = json.loads(out.read_text())
    if not result.pop("accepted"):
        raise ToolRefused(f"sPyNNaker refused {path.name}: {result['error']}")
    return {**result, "note": NOTE}
