#!/usr/bin/env bash
# The GPU check, one prepared run on a lent CUDA machine (never part of the tests): does the CUDA path
# (pinned memory, non-blocking copies, bf16 autocast) give the CPU's answers, and how fast is it?
#
#   bash tests/benchmarks/gpu_check.sh DATA_DIR OUT_DIR
#
# DATA_DIR holds KDDTest+.txt and KDDTest-21.txt (or .txt.gz), and optionally KDDTrain+.txt.gz (then the
# shipped full model's training command also runs on the device, and its result is scored); OUT_DIR receives the logs and JSON. Needs python3 with torch
# (CUDA build) and nta's dependencies importable (PYTHONPATH may point at the repository root).
set -uo pipefail
data=$1 out=$2
dev=${NTA_CHECK_DEVICE:-cuda}  # cpu: a dry run of this script on a machine without a GPU
rows=${NTA_CHECK_ROWS:-1000000}
mkdir -p "$out"
py=python3
step() { echo; echo "== $*"; }

test_file() { ls "$data/$1".txt* | head -1; }

step versions
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, polars, pyarrow, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'polars', polars.__version__, 'pyarrow', pyarrow.__version__, 'numpy', numpy.__version__)"

step "CPU and CUDA answers on KDDTest+ (probabilities, classes, gated classes)"
$py - "$(test_file KDDTest+)" "$dev" <<'EOF'
import sys
import numpy as np
from features.kdd.nslkdd import read_labeled
from model.infer import Classifier
df = read_labeled(sys.argv[1])
for m in ("model/default", "model/default-full"):
    cpu, gpu = Classifier.load(m, device="cpu"), Classifier.load(m, device=sys.argv[2])
    x, _ = cpu.encode(df)  # (n, F)
    pc, pg = cpu.predict_proba(x), gpu.predict_proba(x)  # (n, K) each; the GPU's under bf16 autocast
    gc, _, _ = cpu.predict_gated(x)
    gg, _, _ = gpu.predict_gated(x)
    print(f"{m}: max |p_cpu - p_cuda| {np.abs(pc - pg).max():.4f}, argmax agree "
          f"{(pc.argmax(1) == pg.argmax(1)).mean():.5f} ({(pc.argmax(1) != pg.argmax(1)).sum()} of {len(x)} differ), "
          f"gated agree {(gc == gg).mean():.5f}")
EOF

step "nta evaluate on CUDA (compare with metadata.json's CPU figures)"
for m in model/default model/default-full; do
  for t in KDDTest+ KDDTest-21; do
    $py -m analyzer evaluate "$m" --data "$(test_file "$t")" --device "$dev" --json "$out/eval-$(basename $m)-$t.json" \
      >"$out/eval-$(basename $m)-$t.txt" 2>&1 || echo "evaluate failed: $m $t"
    $py - "$m" "$out/eval-$(basename $m)-$t.json" "$t" <<'EOF'
import json, sys
def accs(d):
    g = d.get("novelty_gate", {})
    return (d["multiclass"]["accuracy"], d["binary"]["accuracy"],
            g.get("multiclass", {}).get("accuracy"), g.get("binary", {}).get("accuracy"))
rec = json.load(open(f"{sys.argv[1]}/metadata.json"))["metrics"]["test"][sys.argv[3] + ".txt"]
got = json.load(open(sys.argv[2]))
print(f"{sys.argv[1]} {sys.argv[3]}: 5-class, binary, gated 5-class, gated binary: this device {accs(got)}; recorded on CPU {accs(rec)}")
EOF
  done
done

step "inference speed on CUDA (1M rows; batch 4096, the issue's, and 65536)"
for m in model/default model/default-full; do
  for b in 4096 65536; do
    $py tests/benchmarks/bench_infer.py "$m" --device "$dev" --rows "$rows" --batch-size "$b" --data "$(test_file KDDTest+)"
  done
done

step "nta scan on CUDA: same verdicts as on CPU?"
for d in cpu "$dev"; do
  $py -m analyzer scan sample_pcaps/demo-mixed.pcap -o "$out/scan-$d" --device "$d" --force -q >"$out/scan-$d.txt" 2>&1
  echo "scan on $d: rc $?"
done
cmp "$out/scan-cpu/verdicts.csv" "$out/scan-$dev/verdicts.csv" && echo "verdicts.csv identical" || \
  $py -c "import polars as pl, sys; a, b = (pl.read_csv(f'$out/scan-{d}/verdicts.csv') for d in ('cpu', '$dev')); \
print('verdicts rows', a.height, b.height, 'label differs', (a['label'] != b['label']).sum() if 'label' in a.columns else '?')"

if ls "$data"/KDDTrain+.txt* >/dev/null 2>&1; then
  step "nta train on $dev: the shipped full model's command (not bit-reproducible on CUDA)"
  t0=$(date +%s)
  $py -m analyzer train --data "$(test_file KDDTrain+)" --features full --depth 10 --novelty-quantile 0.95 --novelty-clusters 128 \
    --device "$dev" -o "$out/full-$dev" -q
  echo "wall $(( $(date +%s) - t0 )) s"
  $py -m analyzer evaluate "$out/full-$dev" --data "$(test_file KDDTest+)" --device "$dev" --json "$out/eval-train-$dev.json" \
    >/dev/null 2>&1
  $py -c "import json; d = json.load(open('$out/eval-train-$dev.json')); g = d['novelty_gate']; \
print('trained on $dev, KDDTest+ 5-class', round(d['multiclass']['accuracy'], 4), 'binary', round(d['binary']['accuracy'], 4), \
'gated', round(g['multiclass']['accuracy'], 4), round(g['binary']['accuracy'], 4))"
  rm -f "$out/full-$dev/weights.safetensors"
fi

step "model and scan tests with CUDA present"
$py -m pytest -q -p no:cacheprovider tests/model tests/scan -x 2>&1 | tail -15
