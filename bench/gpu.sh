#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one run (about 6 minutes on one H100, and up to 15 more
# for step 4), for a session whose task is lent a GPU machine (the `device` tool):
#
#     bash bench/gpu.sh            # PYTHON=... MODEL=... OUT=... to change the defaults
#
# 1. steady latency of 3/10/30 s clips in fp32, fp16 and bf16, with the GPU's peak memory;
# 2. batched throughput on a mixed set of 200 clips of 1-30 s (fp16);
# 3. the live meter's sessions at its default window (3 s every 0.5 s) in fp16, up to 32;
# 4. REST requests/s and p50/p95 at 32-256 clients: one process (with and without cross-request
#    batching) and Ray Serve with 1 and 2 replicas sharing the GPU (bench_serve.py);
# 5. fine-tuning 200 clips of 3-8 s: the caching pass, time per epoch for LoRA K=2, K=4 and --unfreeze 2 (bf16);
# then prints their markdown table. Needs torch with CUDA in $PYTHON's environment (the machine has
# no internet: it cannot install anything) and builds the plus_large random checkpoint if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODEL=${MODEL:-checkpoints/plus_large_random}
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD

"$PY" -c 'import torch, sys; ok = torch.cuda.is_available(); print(torch.__version__, torch.cuda.get_device_name(0) if ok else "no CUDA GPU"); sys.exit(0 if ok else 3)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
[ -f "$MODEL/model.pt" ] || timeout 300 "$PY" -m emotion_app make-checkpoint "$MODEL" --preset plus_large --training-state

for dtype in fp32 fp16 bf16; do
    timeout 120 "$PY" bench/bench_engine.py --worker ours steady --model "$MODEL" --device cuda --dtype "$dtype" \
        | tail -1 > "$OUT/steady_$dtype.json" || echo '{"error": "timed out or failed"}' > "$OUT/steady_$dtype.json"
done
timeout 150 "$PY" bench/bench_engine.py --worker ours throughput:200 --model "$MODEL" --device cuda --dtype fp16 \
    | tail -1 > "$OUT/throughput_fp16.json" || echo '{"error": "timed out or failed"}' > "$OUT/throughput_fp16.json"
timeout 200 "$PY" bench/bench_live.py --model "$MODEL" --modes torch-fp16 --configs 3/0.5 --sessions 4,8,16,32 \
    --seconds 10 > "$OUT/live.md" || echo "(live: timed out or failed)" >> "$OUT/live.md"
timeout 900 "$PY" bench/bench_serve.py --model "$MODEL" --device cuda --dtype fp16 --clients 32,64,128,256 \
    --gpus-per-replica 0.5 --cpus-per-replica 4 --json "$OUT/serve.json" > "$OUT/serve.md" \
    || echo "(serve: timed out or failed)" >> "$OUT/serve.md"
timeout 300 "$PY" bench/bench_finetune.py --model "$MODEL" --device cuda --precision bf16 --clips 200 --epochs 2 \
    > "$OUT/finetune.md" || echo "(fine-tune: timed out or failed)" >> "$OUT/finetune.md"

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"\nGPU: {(out / 'gpu.txt').read_text().strip()}\n")
print("| scenario | fp32 | fp16 | bf16 |\n|---|---|---|---|")
runs = {d: json.loads((out / f"steady_{d}.json").read_text() or "{}") for d in ("fp32", "fp16", "bf16")}
for s in (3, 10, 30):
    print(f"| steady, {s} s clip | " + " | ".join(f"{runs[d].get(f'steady_{s}s', float('nan')) * 1000:.0f} ms" for d in runs) + " |")
print("| GPU peak memory (3/10/30 s) | " + " | ".join(f"{runs[d].get('gpu_peak_mb', float('nan')):.0f} MB" for d in runs) + " |")
t = json.loads((out / "throughput_fp16.json").read_text() or "{}")
print(f"\nBatched throughput, 200 mixed clips of 1-30 s, fp16: {t.get('throughput_x', float('nan')):.0f}x real time "
      f"({t.get('throughput_audio_s', 0) / 60:.0f} min of audio), GPU peak {t.get('gpu_peak_mb', float('nan')):.0f} MB\n")
print((out / "live.md").read_text())
print((out / "serve.md").read_text())
print((out / "finetune.md").read_text())
PYEOF
