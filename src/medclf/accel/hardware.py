"""Hardware detection: the CPU's model and native bf16 flags, GPUs, oneDNN, a device id.

Written into run provenance and the benchmarks, so a timing can be read against the machine that
produced it. No precision is chosen from it (:mod:`medclf.accel.precision`): only ``mixed_float16``
asks whether a GPU is there, to refuse it on a CPU.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: CPU flags (``/proc/cpuinfo``) that mean native bf16 matrix arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo(cpuinfo: str | None) -> str:
    """``cpuinfo`` as given, else ``/proc/cpuinfo`` ("" where it cannot be read)."""
    if cpuinfo is not None:
        return cpuinfo
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of :data:`BF16_CPU_FLAGS` the CPU advertises (empty where unknown). AMX and AVX512-BF16 are
    both native bf16 but not equally fast: oneDNN's AMX kernels are several times faster than its
    AVX512-BF16 ones, notably for convolution weight gradients, so timings are read with this."""
    flags = {flag for line in _cpuinfo(cpuinfo).splitlines() if line.startswith("flags") for flag in line.split()}
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU advertises native bf16 (AMX or AVX512-BF16); False where unknown."""
    return bool(cpu_bf16_flags(cpuinfo))


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``); ``"cpu"`` where unknown."""
    for line in _cpuinfo(cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "cpu"


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` lists (``[]`` without one or without the tool); no
    TensorFlow import, so the runner can record them cheaply."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        done = subprocess.run([tool, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def has_gpu() -> bool:
    """True when TensorFlow sees a GPU (``mixed_float16`` may be declared only there)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its CPU ops through oneDNN in this process (``TF_ENABLE_ONEDNN_OPTS``, read
    when TensorFlow starts; see ``medclf/__init__.py``); ``None`` where TensorFlow cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    probe = getattr(_pywrap_util_port, "IsMklEnabled", None)
    return bool(probe()) if probe else None


def device_id() -> str:
    """A short name of the compute device for benchmark probe keys: GPU names, else the CPU model with its native
    bf16 flags and whether oneDNN is on (one model name can cover CPUs of very different speed)."""
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", "gpu")
            for g in tf.config.list_physical_devices("GPU")]
    if gpus:
        return "+".join(gpus)
    return "|".join([cpu_model(), *cpu_bf16_flags(), "onednn" if onednn_enabled() else "eigen"])
