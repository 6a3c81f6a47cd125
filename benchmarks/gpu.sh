#!/usr/bin/env bash
# GPU readiness, one shot (about 5 minutes on one GPU; every step has its own time limit, 8 minutes in all):
#   1. benchmarks.train_step with XLA (--jit_compile) and mixed_float16 (float32 rows too),
#   2. benchmarks.inference (481x321, batch 1, float32 and mixed_float16, XLA), and benchmarks.video (frames/s
#      at 640x360, 1280x720, 1920x1080 with and without decode + encode),
#   3. a short training run (3 epochs of MENET-LB on heavy rain synthesised over the built-in photos,
#      --mixed_precision = mixed_float16 with loss scaling, XLA on by default with a GPU),
# and prints each one's JSON line (also written to $OUT or ./gpu_out). Run from anywhere:
#     bash benchmarks/gpu.sh            # PYTHON=/path/to/python to choose the interpreter
# Needs a Python with this package's requirements and a GPU build of TensorFlow (pip install -e .[gpu]).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-gpu_out}
mkdir -p "$OUT_DIR"
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

if ! "$PY" -c "import tensorflow as tf, sys; sys.exit(0 if tf.config.list_physical_devices('GPU') else 3)" 2>/dev/null; then
  echo "gpu.sh: $PY has no TensorFlow that sees a GPU (pip install -e '.[gpu]' on a machine with one)" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

status=0
run() {  # run NAME SECONDS CMD...: its output to $OUT_DIR/NAME.log, its last line (the JSON) to stdout
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  if timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1; then
    echo "== $name ($((SECONDS - t0)) s)"; tail -n 1 "$OUT_DIR/$name.log" | tee "$OUT_DIR/$name.json"
  else
    status=1; echo "== $name FAILED or timed out after $((SECONDS - t0)) s; its log ends:"; tail -n 15 "$OUT_DIR/$name.log"
  fi
}

run train_step 200 "$PY" -m benchmarks.train_step --jit_compile --mixed_policy=mixed_float16 --runs=10 --warmup=3
run inference 90 "$PY" -m benchmarks.inference --jit_compile --mixed_policy=mixed_float16 --runs=20
run video 150 "$PY" -m benchmarks.video --frames=16 --memory_size=
WORK=$(mktemp -d)
run synthesize 30 "$PY" -m data_prep.synthesize --out "$WORK/heavy" --style heavy --seed 0
run short_training 150 bash -c "
  t0=\$(date +%s.%N)
  '$PY' -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir='$WORK/heavy' \
      --model_dir='$WORK/run' --epochs=3 --mixed_precision --crop_size=224 --batch_size=20 || exit 1
  '$PY' - \"\$t0\" '$WORK/run' <<'PYEOF'
import csv, json, os, sys, time
rows = list(csv.DictReader(open(os.path.join(sys.argv[2], 'history.csv'))))
print(json.dumps({'short_training_wall_s': time.time() - float(sys.argv[1]), 'epochs': len(rows),
                  'last_epoch': {k: float(v) for k, v in rows[-1].items() if v not in ('', None)}}, sort_keys=True))
PYEOF"
rm -rf "$WORK"
exit $status
