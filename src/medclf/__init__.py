"""medclf: a reproducible workspace for medical image classification (chest X-ray, malaria)."""

import os as _os

# TensorFlow's oneDNN CPU kernels. TensorFlow switches them on by itself only on CPUs with AVX512
# deep-learning features (VNNI, BF16, AMX); on an AVX2-only CPU (AMD EPYC, no AVX512) they trained
# 1.2-1.6x faster here, float32, batch 32: cnn_deeper 513 -> 415 ms per step at 128 px, cnn_bn5
# 379 -> 266 at 96 px, MobileNetV2 757 -> 483 at 224 px. It must be set before TensorFlow is imported
# (run_all.py's notebook kernels inherit it); a value the user set wins, so TF_ENABLE_ONEDNN_OPTS=0
# turns them off. Runs record whether they were on (``training.onednn``).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# No TensorFlow/absl/CUDA start-up lines unless MEDCLF_VERBOSE=1 (run_all.py --verbose): see medclf.core.quiet.
from medclf.core import quiet as _quiet  # noqa: E402

_quiet.install()

__version__ = "0.1.0"
