#!/usr/bin/env bash
# The GPU checks of the learner, in under 8 minutes on one GPU:
#  1. paper-config updates/s in fp32 and bf16, peak GPU memory, MFU against the
#     device's bf16 peak (scripts/bench_updates.py --device cuda);
#  2. the same in bf16 with the transformer stacks compiled (--compile);
#  3. bf16 vs fp32 parity: 300 updates, default widths, real Meta-world batches;
#  4. the agent steps/s of a 3-minute real training run (metaworld_reach, the
#     metaworld preset, learner on the GPU).
# Writes bench_results/gpu/*.json (OUT=dir to change) and prints a summary.
# Without a CUDA GPU it says so and exits 0.
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench_results/gpu}
export RAY_AUTH_MODE=disabled

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA GPU visible to torch here; nothing to check (exit 0)"
  exit 0
fi
mkdir -p "$OUT"
status=0
step() {  # step SECONDS NAME COMMAND...: run with a time limit, keep going on failure
  local limit=$1 name=$2; shift 2
  echo "gpu_check: $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1 || {
    echo "gpu_check: $name failed or timed out (exit $?); see $OUT/$name.log"
    status=1
  }
}

step 150 updates "$PY" scripts/bench_updates.py --device cuda --configs paper \
  --precisions fp32,bf16 --repeats 5 --out "$OUT/updates.json"
step 120 updates_compiled "$PY" scripts/bench_updates.py --device cuda \
  --configs paper --precisions bf16 --compile --repeats 5 \
  --out "$OUT/updates_compiled.json"
step 90 parity "$PY" scripts/precision_parity.py --device cuda --updates 300 \
  --batch 16 --length 50 --out "$OUT/parity.json"
step 210 train "$PY" -m rllib_mwm train --algo MWM --env metaworld_reach \
  --name gpu_check --storage-path "$(realpath "$OUT")/ray_results" \
  --config '{"presets": ["metaworld"], "env_config": {"fast_render": true},
             "num_gpus_per_learner": 1, "num_env_runners": 4,
             "prefill": 2500, "mae_pretrain": 50, "eval_eps": 0}' \
  --stop '{"time_total_s": 180}'

"$PY" - "$OUT" <<'EOF'
import glob, json, os, sys

out = sys.argv[1]
summary = {}
for name in ("updates", "updates_compiled"):
    path = os.path.join(out, f"{name}.json")
    if os.path.exists(path):
        data = json.load(open(path))
        for row in data["results"]:
            key = f"{row['update']} {row['precision']}" + (
                " compiled" if data["meta"]["compile"] else ""
            )
            summary[key] = {
                "updates_per_s": round(1 / row["median_s"], 3),
                "peak_gpu_gib": round(row.get("peak_gpu_gib", float("nan")), 2),
                "mfu": round(row.get("mfu", float("nan")), 4),
            }
parity = os.path.join(out, "parity.json")
if os.path.exists(parity):
    summary["parity"] = json.load(open(parity))["relative_difference"]
results = sorted(glob.glob(os.path.join(out, "ray_results/gpu_check/*/result.json")))
if results:
    rows = [json.loads(line) for line in open(results[-1]) if line.strip()]
    train = [r for r in rows if r.get("phase") == "train"]
    if len(train) >= 2:
        steps = train[-1]["agent_steps"] - train[0]["agent_steps"]
        seconds = train[-1]["time_total_s"] - train[0]["time_total_s"]
        summary["train_agent_steps_per_s"] = round(steps / max(seconds, 1e-9), 2)
    summary["train_last_phase"] = rows[-1].get("phase") if rows else None
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
EOF
exit $status
