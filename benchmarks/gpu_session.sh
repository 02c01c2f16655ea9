#!/usr/bin/env bash
# One GPU session, from the repository root on a GPU machine (MNIST in $DISTGRAD_DATA/mnist):
# install, the test suite with its CUDA variants, W1-W3 on the GPU, the CNN for 5 epochs, 2-rank MNIST.
set -uo pipefail
export PYTHONUNBUFFERED=1 DISTGRAD_DATA=${DISTGRAD_DATA:-$PWD/.gpu_data} OUT=${OUT:-results/gpu}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # Open MPI refuses root otherwise
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/device.txt
python -m pip install -q --no-build-isolation --no-deps -e . > $OUT/pip.log 2>&1 || echo "pip install failed" | tee -a $OUT/device.txt
python -c "import cupy, numpy, distgrad; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'cuda', distgrad.cuda.is_available())" | tee -a $OUT/device.txt
timeout 250 python -m pytest -q -p no:cacheprovider -rf --deselect tests/test_slurm_cluster.py 2>&1 | tee $OUT/gpu_tests.log | tail -15
for dev in cuda; do
  timeout 45 python benchmarks/autograd_overhead.py --device $dev | tee $OUT/w3_$dev.json
  timeout 60 python benchmarks/mnist_mlp_epoch.py --device $dev | tee $OUT/w1_$dev.json
  timeout 60 python benchmarks/cnn_step.py --device $dev | tee $OUT/w2_$dev.json
done
timeout 100 python examples/mnist.py --device cuda --model cnn --epochs 5 --out $OUT/cnn 2>&1 | tee $OUT/cnn5.log
timeout 60 distgrad-launch -n 2 examples/mnist.py --device cuda --epochs 1 2>&1 | tee $OUT/mnist_2ranks_gpu.log
