#!/usr/bin/env bash
# Build a separate virtual environment with sPyNNaker 1!7.4.1 (PyNN 0.13.0)
# for delaynir's `spinnaker` target: map and "run" PyNN networks on a virtual
# SpiNNaker board (no hardware needed).  pip only; idempotent.
#
#   targets/spinnaker/build_spynnaker_env.sh [ENV_DIR] [--force]
#
#   ENV_DIR   where the venv goes (default: $SPYNNAKER_ENV, else
#             ~/.cache/delaynir/spynnaker-env); about 0.4 GB.  Keep it outside
#             the repository (or inside under a git-ignored name).
#   --force   recreate the venv even if its stamp says it is up to date.
#
# Environment: SPYNNAKER_BUILD_PYTHON (the interpreter to build the venv with;
# default python3.11, else python3; it must be >= 3.11: numpy 2.4.6, scipy
# 1.17.1 and matplotlib 3.11.2, pinned below, require it).
#
# Running sPyNNaker without touching the user's home (see
# docs/research/SPYNNAKER_NOTES.md, "Configuration and files written"):
# sPyNNaker reads ~/.spynnaker.cfg (also $XDG_CONFIG_HOME/.spynnaker.cfg and
# the site config dir) and, if none exists, WRITES a template ~/.spynnaker.cfg
# and raises NoConfigFoundException; then ./spynnaker.cfg in the working
# directory overrides it.  It writes reports/<timestamp>/ under the working
# directory, and matplotlib (imported by sPyNNaker) writes ~/.cache and
# ~/.config.  So the smoke test below (and delaynir's runner) uses a temporary
# working directory that is also HOME and XDG_CONFIG_HOME, holding both
# .spynnaker.cfg and spynnaker.cfg with virtual_board = True.
#
# Versions are pinned to what `pip install spynnaker h5py` resolved on
# 2026-12-07 (the complete `pip freeze`), so that a rebuild maps networks
# with the same code.
set -euo pipefail

START=$SECONDS
# shellcheck source=targets/spinnaker/env_steps.sh
. "$(dirname "$0")/env_steps.sh"
HELP_LINES="2,15p"
DEFAULT_ENV="${SPYNNAKER_ENV:-$HOME/.cache/delaynir/spynnaker-env}"
parse_env_args "$@"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The sPyNNaker 7.4.1 stack (all released together, epoch 1!).
SPINN_PINS="sPyNNaker==1!7.4.1 SpiNNFrontEndCommon==1!7.4.1 SpiNNaker_PACMAN==1!7.4.1 \
SpiNNMan==1!7.4.1 SpiNNMachine==1!7.4.1 SpiNNUtilities==1!7.4.1 spalloc==1!7.4.1"
# Everything else in `pip freeze` after `pip install spynnaker h5py`.
OTHER_PINS="PyNN==0.13.0 numpy==2.4.6 scipy==1.17.1 h5py==3.16.0 neo==0.14.6 \
quantities==0.16.4 lazyarray==0.7.0 csa==0.1.13 matplotlib==3.11.2 contourpy==1.3.3 \
cycler==0.12.1 fonttools==4.69.1 kiwisolver==1.5.1 pillow==13.0.0 pyparsing==3.3.3 \
python-dateutil==4.0.0 packaging==26.4 appdirs==1.4.4 attrs==26.1.0 Deprecated==1.3.1 \
wrapt==2.5.2 docstring_parser==0.18.0 ebrains-drive==0.7.0 requests==2.34.2 \
certifi==2026.10.19.post1 charset-normalizer==3.5.3 idna==3.21 urllib3==2.8.0 \
jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
rpds-py==2026.9.1 PyYAML==6.0.4 tqdm==4.70.1 typing_extensions==4.16.0 tzdata==2026.6 \
websocket-client==1.9.2"

log() { echo "[build_spynnaker_env $((SECONDS - START))s] $*"; }

PY="${SPYNNAKER_BUILD_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
if [ -z "$PY" ]; then
    echo "no python3.11 or python3 found; set SPYNNAKER_BUILD_PYTHON" >&2; exit 1
fi
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
    echo "$PY is Python $PYVER; the pinned numpy/scipy/matplotlib need >= 3.11:" \
         "set SPYNNAKER_BUILD_PYTHON" >&2; exit 1
fi
log "interpreter $PY (Python $PYVER), env $ENV_DIR"
STAMP_WANT="python=$PYVER pins=$SPINN_PINS $OTHER_PINS script=1"
STAMP="$ENV_DIR/.delaynir-spynnaker-env"
VPY="$ENV_DIR/bin/python"

# Smoke test: SpikeSourceArray(4) -> IF_curr_delta(3), FromListConnector with
# delays of 1..20 steps, 1 ms timestep, run 30 ms on a virtual Spin5 board, in
# a throw-away directory that is also HOME (nothing is written to the real
# home).  Checks the mapping (one neuron core, no delay extension: 3 neurons
# per core leave 2^(14-2-1) = 2048 native delay slots, of which the 20-step
# maximum needs 32) and the ring-buffer shifts sPyNNaker chose from its
# weight statistics ([2, 0]: excitatory, inhibitory).
smoke() {
    local tmp rc=0
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/delaynir-spynnaker-smoke.XXXXXX")"
    printf '[Machine]\nvirtual_board = True\nversion = 5\n' > "$tmp/.spynnaker.cfg"
    cp "$tmp/.spynnaker.cfg" "$tmp/spynnaker.cfg"
    (cd "$tmp" && HOME="$tmp" XDG_CONFIG_HOME="$tmp/.config" MPLBACKEND=Agg \
        "$VPY" - > "$tmp/smoke.log" 2>&1 <<'PYEOF'
import json
import pyNN.spiNNaker as sim
from spynnaker.pyNN.data import SpynnakerDataView
from spynnaker.pyNN.models.neuron import PopulationMachineVertex
from spynnaker.pyNN.models.utility_models.delays import DelayExtensionMachineVertex

sim.setup(timestep=1.0)
src = sim.Population(4, sim.SpikeSourceArray(spike_times=[[0.0], [1.0], [2.0], [3.0]]),
                     label="src")
pop = sim.Population(3, sim.IF_curr_delta(), label="pop")
conns = [(i, j, 1.0, float(1 + (5 * i + 7 * j) % 20)) for i in range(4) for j in range(3)]
conns += [(0, 0, 1.0, 20.0), (1, 1, 1.0, 1.0)]
sim.Projection(src, pop, sim.FromListConnector(conns), sim.StaticSynapse())
pop.record("spikes")
sim.run(30)
app = [p for p in SpynnakerDataView.iterate_placemements() if p.vertex.app_vertex is not None]
stats = {
    "chips": len({(p.x, p.y) for p in app}),
    "cores": len(app),
    "neuron_cores": sum(isinstance(p.vertex, PopulationMachineVertex) for p in app),
    "delay_extension_cores": sum(isinstance(p.vertex, DelayExtensionMachineVertex)
                                 for p in app),
    "shifts": pop._vertex.get_ring_buffer_shifts(),
    "max_native_delay": pop._vertex.splitter.max_support_delay(),
}
sim.end()
assert stats["neuron_cores"] == 1 and stats["delay_extension_cores"] == 0, stats
assert stats["shifts"] == [2, 0] and stats["max_native_delay"] == 32, stats
print("SMOKE " + json.dumps(stats))
PYEOF
    ) || rc=$?
    if [ "$rc" = 0 ]; then
        log "smoke: $(grep '^SMOKE ' "$tmp/smoke.log" | cut -c7-)"
    else
        tail -n 30 "$tmp/smoke.log" >&2
    fi
    rm -rf "$tmp"
    return "$rc"
}

exit_if_up_to_date

# --- venv ------------------------------------------------------------------
fresh_venv "$PY"

# --- packages --------------------------------------------------------------
log "pip install sPyNNaker 1!7.4.1 and its pinned dependencies"
# shellcheck disable=SC2086
"$VPY" -m pip install --no-input -q $SPINN_PINS $OTHER_PINS

# --- check -----------------------------------------------------------------
smoke
echo "$STAMP_WANT" > "$STAMP"
log "done in $((SECONDS - START)) s: $("$VPY" -m pip list 2>/dev/null \
    | grep -iE '^(spynnaker|pynn|numpy) ' | tr -s ' ' | paste -sd, -)"
log "use: $VPY your_script.py (in a directory with spynnaker.cfg, HOME set to it)"
