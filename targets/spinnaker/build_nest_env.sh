#!/usr/bin/env bash
# Build a separate virtual environment with NEST 3.10.0 (the PyPI wheel, cp311
# manylinux) for delaynir's `nest` executor (targets/spinnaker/nest_run.py).
# pip only; idempotent.
#
#   targets/spinnaker/build_nest_env.sh [ENV_DIR] [--force]
#
#   ENV_DIR   where the venv goes (default: $NEST_ENV, else
#             ~/.cache/delaynir/nest-env); about 0.3 GB.  Then either keep
#             that default or set DELAYNIR_NEST_PYTHON=ENV_DIR/bin/python.
#   --force   recreate the venv even if its stamp says it is up to date.
#
# Environment: NEST_BUILD_PYTHON (the interpreter to build the venv with;
# default python3.11, else python3, which must be 3.11: the only wheel).
#
# Why a separate environment: NEST keeps one global kernel per process,
# prints a banner on import and brings its own OpenMP runtime, so delaynir
# runs it in a subprocess, as it runs Lava.  Versions are pinned to what pip
# resolved on 2026-12-07 (NEST 3.10.0: docs/research/NEST_NOTES.md measured
# its propagators and update order; a rebuild gets the same numbers).
set -euo pipefail

START=$SECONDS
# shellcheck source=targets/spinnaker/env_steps.sh
. "$(dirname "$0")/env_steps.sh"
HELP_LINES="2,14p"
DEFAULT_ENV="${NEST_ENV:-$HOME/.cache/delaynir/nest-env}"
parse_env_args "$@"
export PIP_DISABLE_PIP_VERSION_CHECK=1

PINS="nest-simulator==3.10.0 numpy==2.4.6 h5py==3.16.0 contourpy==1.3.3 cycler==0.12.1 \
Cython==3.3.2 fonttools==4.69.1 kiwisolver==1.5.1 matplotlib==3.11.2 packaging==26.4 \
pillow==13.0.0 pyparsing==3.3.3 python-dateutil==4.0.0 tzdata==2026.6"

log() { echo "[build_nest_env $((SECONDS - START))s] $*"; }

PY="${NEST_BUILD_PYTHON:-$(command -v python3.11 || command -v python3)}"
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$PYVER" != "3.11" ]; then
    echo "$PY is Python $PYVER; NEST 3.10.0's wheel needs 3.11: set NEST_BUILD_PYTHON" >&2; exit 1
fi
STAMP_WANT="python=$PYVER pins=$PINS script=1"
STAMP="$ENV_DIR/.delaynir-nest-env"
VPY="$ENV_DIR/bin/python"

smoke() {  # one neuron: an input spike at 1 ms over a 3 ms delay lifts V by the weight at 4 ms
    (cd "$(mktemp -d)" && PYNEST_QUIET=1 "$VPY" - <<'PYEOF'
import nest
nest.verbosity = nest.VerbosityLevel.ERROR
nest.resolution = 1.0
g = nest.Create("spike_generator", params={"spike_times": [1.0]})
n = nest.Create("iaf_psc_delta", params={"E_L": 0.0, "V_m": 0.0, "V_reset": 0.0, "V_th": 10.0, "C_m": 1.0,
                                         "tau_m": 1e300, "t_ref": 0.0})
m = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": 1.0})
nest.Connect(g, n, syn_spec={"weight": 0.5, "delay": 3.0})
nest.Connect(m, n)
nest.Simulate(6.0)
ev = m.events
assert dict(zip(ev["times"], ev["V_m"]))[4.0] == 0.5, ev
print("nest env ok: NEST", nest.__version__)
PYEOF
    )
}

exit_if_up_to_date
fresh_venv "$PY"
log "pip install $PINS"
# shellcheck disable=SC2086
"$VPY" -m pip install -q --no-input $PINS
smoke
echo "$STAMP_WANT" > "$STAMP"
log "done in $((SECONDS - START)) s; use DELAYNIR_NEST_PYTHON=$VPY (or keep the default $ENV_DIR)"
