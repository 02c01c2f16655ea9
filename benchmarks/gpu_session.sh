#!/usr/bin/env bash
# One GPU session in at most 8 minutes (the parts' timeouts add up to 480 s), from the repository root:
#
#   bash benchmarks/gpu_session.sh [--dry-run] [NAME]
#
# 1. environment: nvidia-smi; distgrad installed with `pip install -e . --no-deps` (offline); wheels in
#    .whl/ (cudnn-frontend, which the GPU image lacks) installed into /tmp/site; versions.
# 2. the CUDA tests of the GPU paths (kernels, graphs, cuDNN, ops' cuda variants, DDP on NCCL): `pytest -m cuda`.
# 3. W1, W2, W3 and W7 (preset full) on the GPU, distgrad and PyTorch in the same run; W3 and W1 with the
#    step captured in a CUDA graph (benchmarks/graphed_step.py), W1 under DDP on NCCL (world size 1) too;
#    W8 (bf16 against float32) when benchmarks/amp_step.py exists.
# 4. a short distgrad-bench: all-reduce over NCCL with world size 1, DDP with 2 MPI ranks sharing the GPU.
# 5. $OUT/gpu-NAME/summary.json and summary.md (python -m distgrad.bench.gpu_session), and every log in
#    $OUT/gpu-NAME/logs.tar.gz: the device tool brings back at most 8 files, two folders down.
#
# --dry-run runs the same parts on the CPU with tiny sizes (no nvidia-smi, no pip): it checks the script's
# logic, the JSON each benchmark prints and the summary, not the GPU. MNIST is read from $DISTGRAD_DATA
# (default .gpu_data, then ../shared/data); the lead copies it there and carries it, with .whl, to the GPU.
set -uo pipefail
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
NAME=${1:-$(date +%Y-%m-%d)}
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # Open MPI refuses root otherwise
if [ -z "${DISTGRAD_DATA:-}" ]; then
  if [ -d .gpu_data/mnist ]; then export DISTGRAD_DATA=$PWD/.gpu_data; else export DISTGRAD_DATA=$PWD/../shared/data; fi
fi
OUT=${OUT:-results/gpu}
RESULT=$OUT/gpu-$NAME
LOGS=$(mktemp -d)/logs
mkdir -p "$RESULT" "$LOGS"
: > "$LOGS/status.txt"

# part NAME SECONDS COMMAND...: runs COMMAND with its output in $LOGS/NAME, records its exit status.
part() {
  local name=$1 limit=$(( $2 * SLOW )); shift 2
  echo "== $name (at most ${limit}s)"
  timeout "$limit" "$@" > "$LOGS/$name" 2>&1
  local rc=$?
  echo "${name%.*} $rc" >> "$LOGS/status.txt"
  tail -n 3 "$LOGS/$name"
}

SLOW=1
if [ $DRY = 1 ]; then
  SLOW=3  # a shared CPU: the limits are for the GPU
  DEVICE=cpu; GPU="dry run (cpu)"; W1_ARGS="--skip-torch"; W2_ARGS="--steps 3 --warmup 1"; W3_ARGS="--reps 3"
  W7_ARGS="--preset tiny --steps 2 --rounds 1"; GRAPH_ARGS="--reps 3"; TEST_SELECT=(-m cuda --co -q)
  BENCH_RANKS=1; BACKEND=mpi
else
  DEVICE=cuda; W1_ARGS=""; W2_ARGS="--steps 100 --warmup 10"; W3_ARGS="--reps 20"
  W7_ARGS="--preset full --steps 10 --rounds 3"; GRAPH_ARGS="--reps 20"; TEST_SELECT=(-m cuda -q -rf)
  BENCH_RANKS=1,2; BACKEND=nccl
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOGS/device.txt"
  GPU=$(head -n1 "$LOGS/device.txt" | cut -d, -f1)
  part pip.log 40 python -m pip install -q --no-build-isolation --no-deps -e .
  if ls .whl/*.whl > /dev/null 2>&1; then
    part wheels.log 30 python -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
fi
part versions.log 20 python -c "import numpy, distgrad, distgrad.bench.machine as m; print(m.gpu_facts()); \
import importlib.util as u; print('cudnn-frontend', u.find_spec('cudnn') is not None)"

# 2. what changed, on the GPU
part tests.log 90 python -m pytest -p no:cacheprovider "${TEST_SELECT[@]}" tests/test_gpu_paths.py \
  tests/test_ops_activation.py tests/test_ops_normalization.py tests/test_ops_loss.py tests/test_ops_attention.py \
  tests/test_ops_conv.py tests/test_ops_dropout.py tests/test_ops_elementwise.py tests/test_distributed_collectives.py

# 3. the workloads, both frameworks in one run each
part w1.json 45 python benchmarks/mnist_mlp_epoch.py --device $DEVICE $W1_ARGS
part w2.json 30 python benchmarks/cnn_step.py --device $DEVICE $W2_ARGS
part w3.json 25 python benchmarks/autograd_overhead.py --device $DEVICE $W3_ARGS
part graphs.json 40 python benchmarks/graphed_step.py --device $DEVICE $GRAPH_ARGS
part graphs_ddp_$BACKEND.json 30 mpiexec -n 1 python benchmarks/graphed_step.py --device $DEVICE --ddp $BACKEND $GRAPH_ARGS
part w7.json 50 python benchmarks/gpt_step.py --device $DEVICE $W7_ARGS
if [ -f benchmarks/amp_step.py ]; then
  part w8.json 35 python benchmarks/amp_step.py --device $DEVICE $([ $DRY = 1 ] && echo "--steps 2")
fi

# 4. distgrad-bench, short: NCCL with world size 1, MPI ranks sharing the GPU
part bench_allreduce.log 20 distgrad-bench allreduce --ranks 1 --device $DEVICE --max-bytes 16M --quiet \
  --out "$LOGS/bench" $([ $DRY = 0 ] && echo "--backends nccl,mpi")
part bench_ddp.log 25 distgrad-bench ddp --ranks $BENCH_RANKS --device $DEVICE --backend mpi --models mlp \
  --scaling weak --bucket-caps 25 --steps 5 --warmup-steps 2 --repeats 1 --quiet --out "$LOGS/bench"

# 5. the summary, and the logs in one file
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python -m distgrad.bench.gpu_session "$LOGS" "$RESULT" --name "$NAME" --gpu "$GPU" --commit "$COMMIT" | tee "$LOGS/summary.log"
tar -czf "$RESULT/logs.tar.gz" -C "$(dirname "$LOGS")" logs
echo "wrote $RESULT/summary.json, summary.md and logs.tar.gz"
