#!/usr/bin/env bash
# The whole study on one machine, timed: install, run every notebook on each data set, print one line per
# notebook (benchmarks/study_summary.py). Made for a GPU machine (TensorFlow finds the GPU by itself; every
# model trains in the precision its profile declares, as on a CPU: to train in mixed precision on the GPU,
# declare it after --, e.g. -- -p mixed_precision=mixed_float16); runs the same on a CPU.
#
# usage: benchmarks/gpu_study.sh [--profile full|quick|demo] [--data DIR] [--out DIR] [--datasets "chest_xray malaria"]
#                                [--wheels DIR] [--no-install] [-- extra run_all.py arguments]
#   --data DIR      holds chest_xray/, malaria/cell_images/ and medmnist/pneumoniamnist.npz (default ../shared/data)
#   --out DIR       output_dir and cache_dir of the runs (default outputs/gpu_study; cold caches: give a new folder)
#   --wheels DIR    install offline from the wheels in DIR (pip --no-index --find-links DIR)
#   --no-install    use the Python environment as it is
# The demo profile runs the synthetic data set only (offline, minutes): the suite runs it that way.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=full; data=../shared/data; out=outputs/gpu_study; datasets="chest_xray malaria"; wheels=""; install=1
extra=()
while (($#)); do
  case "$1" in
    --profile) profile=$2; shift 2;;
    --data) data=$2; shift 2;;
    --out) out=$2; shift 2;;
    --datasets) datasets=$2; shift 2;;
    --wheels) wheels=$2; shift 2;;
    --no-install) install=0; shift;;
    --) shift; extra=("$@"); break;;
    *) echo "error: unknown argument $1 (see the usage at the top of $0)" >&2; exit 2;;
  esac
done
[[ $profile == demo ]] && datasets=synthetic
python=${PYTHON:-python3}
declare -A root=([chest_xray]="$data/chest_xray" [malaria]="$data/malaria/cell_images"
                 [pneumoniamnist]="$data/medmnist/pneumoniamnist.npz" [synthetic]="$out/synthetic_data")
for dataset in $datasets; do
  if [[ -z ${root[$dataset]+set} ]]; then
    echo "error: --datasets: unknown data set $dataset (give chest_xray, malaria, pneumoniamnist or synthetic)" >&2
    exit 2
  fi
done

if ((install)); then
  echo "== install"
  if [[ -n $wheels ]]; then
    $python -m pip install -q --no-index --find-links "$wheels" -e ".[dev]"
  else
    $python -m pip install -q -e ".[dev]"
    if command -v nvidia-smi >/dev/null; then  # TensorFlow's CUDA libraries, at the installed TensorFlow's version
      $python -m pip install -q "tensorflow[and-cuda]==$($python -c 'import importlib.metadata as m; print(m.version("tensorflow"))')"
    fi
  fi
fi

echo "== device"
$python - <<'PY'
import os, platform
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import medclf  # quiet TensorFlow start-up
import tensorflow as tf
from medclf.accel import hardware
print(f"TensorFlow {tf.__version__}; GPUs: {', '.join(hardware.gpu_names()) or 'none'}; device {hardware.device_id()} "
      f"x{os.cpu_count()} CPUs; python {platform.python_version()}")
PY

status=0
for dataset in $datasets; do
  echo "== $dataset ($profile)"
  start=$SECONDS
  $python run_all.py --dataset "$dataset" --profile "$profile" --data-root "${root[$dataset]}" \
    -p "output_dir=$out" -p "cache_dir=$out/cache" "${extra[@]}" || status=$?
  echo "== $dataset: $((SECONDS - start)) s wall (exit $status)"
done

echo "== summary"
$python benchmarks/study_summary.py "$out"
exit $status
