# shellcheck shell=bash
# Steps shared by this folder's environment scripts (build_nest_env.sh, build_spynnaker_env.sh), which source it.
# The script sets HELP_LINES (the sed range of its usage comment) and DEFAULT_ENV, and defines log() and smoke(),
# before calling these.  Not executable on its own.

# parse_env_args "$@": ENV_DIR (the one positional argument, else $DEFAULT_ENV) and FORCE (1 with --force).
parse_env_args() {
    ENV_DIR=""
    FORCE=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --force) FORCE=1; shift ;;
            -h|--help) sed -n "$HELP_LINES" "$0"; exit 0 ;;
            -*) echo "unknown option $1 (options: --force)" >&2; exit 2 ;;
            *) ENV_DIR="$1"; shift ;;
        esac
    done
    ENV_DIR="${ENV_DIR:-$DEFAULT_ENV}"
}

# exit_if_up_to_date: exit 0 when $STAMP holds $STAMP_WANT and smoke passes (never with --force).
exit_if_up_to_date() {
    if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ] && smoke; then
        log "up to date"; exit 0
    fi
}

# fresh_venv PYTHON: an empty venv at $ENV_DIR, so that the result never depends on what an earlier run left
# behind (an existing venv is cleared; a non-empty directory that is not a venv is refused); the stamp removed.
fresh_venv() {
    if [ -e "$ENV_DIR" ] && [ ! -f "$ENV_DIR/pyvenv.cfg" ] && [ -n "$(ls -A "$ENV_DIR")" ]; then
        echo "$ENV_DIR exists, is not empty and is not a venv; refusing to touch it" >&2; exit 1
    fi
    if [ -f "$ENV_DIR/pyvenv.cfg" ]; then
        log "recreating $ENV_DIR"; "$1" -m venv --clear "$ENV_DIR"
    else
        mkdir -p "$(dirname "$ENV_DIR")"; "$1" -m venv "$ENV_DIR"
    fi
    rm -f "$STAMP"
}
