#!/usr/bin/env bash
# One short GPU session, prepared so that a few minutes on a lent GPU give every CUDA figure the
# README asks for: the CUDA tests (tests/test_cuda.py, skipped without a GPU), the full training
# step and the delay layer against DCLS (cuDNN) with bfloat16 autocast off and on, and a few
# epochs of the accuracy-per-time comparison on a spoken-digit set.
#
#   benchmarks/cuda_check.sh SPEECH_DIR OUT_DIR [EPOCHS]
#
# SPEECH_DIR: train.h5 and test.h5 in the SHD layout (`delaynir data speech --out SPEECH_DIR`).
# Needs delaynir installed with the test and bench extras. Each part has its own time limit, so
# one that hangs costs only its share; everything lands in OUT_DIR as it is produced.
set -uo pipefail
data=${1:?usage: cuda_check.sh SPEECH_DIR OUT_DIR [EPOCHS]}
out=${2:?usage: cuda_check.sh SPEECH_DIR OUT_DIR [EPOCHS]}
epochs=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 2
timeout 200 python3 -m pytest -q -p no:cacheprovider "$here/../tests/test_cuda.py" 2>&1 | tee "$out/tests.txt"
timeout 120 python3 "$here/train_step.py" --device cuda --json > "$out/train_step_fp32.json"
timeout 120 python3 "$here/train_step.py" --device cuda --amp --json > "$out/train_step_amp.json"
timeout 120 python3 "$here/delay_layer.py" --device cuda --json > "$out/delay_layer.json"
timeout 600 python3 "$here/vs_dcls.py" --data "$data" --epochs "$epochs" --seeds 0 1 --device cuda --json \
    > "$out/vs_dcls.json" 2> "$out/vs_dcls.log"
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("train_step_fp32", "train_step_amp"):
    try:
        rows = json.loads((out / f"{name}.json").read_text())["rows"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"{name}: missing ({exc})")
        continue
    for r in rows:
        print(f"{name} {r['sigma']}: reference {r['reference_s'] * 1e3:.1f} ms, delaynir {r['delaynir_s'] * 1e3:.1f} ms, "
              f"{r['speedup']:.2f}x")
try:
    print(json.dumps(json.loads((out / "vs_dcls.json").read_text())["summary"], indent=1))
except (OSError, ValueError, KeyError) as exc:
    print(f"vs_dcls: missing ({exc})")
PY
