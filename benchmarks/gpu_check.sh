#!/usr/bin/env bash
# Every GPU check of the project in one run (benchmarks/gpu_check.py): the suite with CUDA, the
# benchmarks on CUDA, `fcnlab demo`; under 8 minutes, at most 8 files in $OUT, summary last.
#
# The GPU machine has torch, torchvision, onnxruntime, pytest-xdist, ... but no pycocotools
# and no network, so pycocotools travels as a wheel. Once, here, from the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl pycocotools==2.0.10
# then run `bash benchmarks/gpu_check.sh` there with `.whl` carried.
# PYTHON picks the interpreter (default python3; e.g. PYTHON=.venv/bin/python for a --quick
# check of the script on a CPU machine).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import pycocotools" 2> /dev/null && compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/fcnlab_site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/fcnlab_site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
exec "$PYTHON" benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}" "$@"
