"""Shared fixtures: small image trees generated on the fly, and the real data when present."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medclf.config import paths as config
from medclf.config.params import load_params

SHARED_DATA = Path(os.environ.get("MEDCLF_SHARED_DATA", config.PROJECT_ROOT.parent / "shared" / "data"))

#: Markers of the long end-to-end tests the default run (the check before every commit) leaves out;
#: ``python -m pytest --all`` (CI) runs them too.
LONG_MARKERS = ("slow",)
_LEFT_OUT = pytest.StashKey[int]()  # how many tests the default run deselected


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", default=False,
                     help=f"also run the long end-to-end tests (marked {', '.join(LONG_MARKERS)}); CI runs this")


def _asked_for_long_tests(config) -> bool:
    """``--all``, a ``-m`` expression (the user chose by marker) or a test named by its node id."""
    return (config.getoption("--all") or bool(config.getoption("markexpr"))
            or any("::" in arg for arg in config.args))


def pytest_collection_modifyitems(config, items):
    """Without ``--all``, deselect the tests marked with :data:`LONG_MARKERS` (counted for the summary).

    For ``-n N`` (pytest-xdist; pyproject sets ``--dist loadgroup``) each test joins a group that one worker
    runs whole: the tests sharing the session's demo run (:func:`demo_run`) form one, every other module is
    its own, so no session or module fixture is built twice."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            group = "demo_run" if "demo_run" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
    if _asked_for_long_tests(config):
        return
    long = [item for item in items if any(item.get_closest_marker(m) for m in LONG_MARKERS)]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if not any(item.get_closest_marker(m) for m in LONG_MARKERS)]
    config.stash[_LEFT_OUT] = len(long)


def pytest_report_header(config):
    if config.getoption("--all"):
        return "medclf: --all: every test, the long end-to-end ones included"
    if _asked_for_long_tests(config):
        return None
    return f"medclf: tests marked {' or '.join(LONG_MARKERS)} are left out; python -m pytest --all runs them too"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left_out = config.stash.get(_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"medclf: {left_out} long end-to-end tests (marked {' or '.join(LONG_MARKERS)}) were left out: "
            "python -m pytest --all runs everything (CI does)")


def real_data_places(dataset: str) -> list[Path]:
    """Where the tests look for a real data set, in order: under :data:`SHARED_DATA` (``../shared/data``
    or ``$MEDCLF_SHARED_DATA``, laid out as the project's ``data/`` folder), then the data set's own default
    ``data_root`` (``params/datasets/<name>.yaml``, e.g. ``<project>/data/chest_xray``), where the README
    tells a user to put it."""
    default = Path(load_params(dataset)["data_root"])
    return [SHARED_DATA.joinpath(*default.parts[1:]), config.resolve(default)]


def real_data(dataset: str) -> Path:
    """The first of :func:`real_data_places` that exists, or skip the test when the data set is absent."""
    places = real_data_places(dataset)
    for path in places:
        if path.exists():
            return path
    pytest.skip(f"real data set {dataset} not present: looked in {' and '.join(map(str, places))}")


def write_image(path: Path, rng: np.random.Generator, size: int = 20, mode: str = "L", value: int | None = None) -> Path:
    """Write a small random (or constant ``value``) image in the given PIL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if mode == "L" else (size, size, 3)
    pixels = np.full(shape, value, np.uint8) if value is not None else rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode="L" if mode == "L" else "RGB").save(path)
    return path


def synthetic_params(root: Path, **overrides) -> dict:
    """Parameters for a tiny synthetic run under ``root`` (data, cache and outputs there): 40 images per
    class of 32 px, one epoch, inputs capped at 32 px, 20 bootstrap replicates; ``overrides`` win."""
    return load_params(overrides={"data_root": str(root / "syn"), "cache_dir": str(root / "cache"),
                                  "output_dir": str(root / "out"), "synthetic_images_per_class": 40,
                                  "synthetic_image_size": 32, "max_epochs": 1, "max_image_size": 32,
                                  "bootstrap_replicates": 20, **overrides})


def freeze_random_batch_norm(model, seed: int = 0):
    """Give every batch norm of ``model`` random moving statistics, scale and offset (away from the
    initial 0 / 1, so that folding them is not trivially exact) and freeze it (inference mode)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([w.astype("float32") for w in (
                rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.5, n), rng.uniform(0.5, 2, n))])
            layer.trainable = False
    return model


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file and folder under ``root`` (empty when absent)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in [root, *root.rglob("*")]}


@pytest.fixture(scope="session", autouse=True)
def _repo_outputs_untouched():
    """Tests never touch the user's files: the repository's ``outputs/`` tree (names, sizes, modification
    times) is the same at the end of the session as at its start. Every test writes under a tmp dir
    (pass ``output_dir``, ``cache_dir`` and ``data_root``: their defaults point into ``outputs/``)."""
    root = config.PROJECT_ROOT / "outputs"
    before = _tree_state(root)
    yield
    after = _tree_state(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        pytest.fail(f"the test session changed the repository's outputs/ ({len(changed)} paths): "
                    + ", ".join(changed[:20]), pytrace=False)


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
    """Every test ends with Keras' global dtype policy back at float32: training code (run_model's
    precision choice) sets it process-wide, and a test must not hand mixed_bfloat16 to the next one."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def make_tree(tmp_path, rng):
    """Build ``ROOT/[split/]class/patientP_k.png`` trees: ``make_tree({"train": {"A": 10}}, patients=5)``."""

    def build(spec: dict, patients: int = 5, suffix: str = ".png", root: Path | None = None) -> Path:
        root = root or tmp_path / "data"
        for split, classes in spec.items():
            for class_name, count in classes.items():
                for i in range(count):
                    name = f"{class_name.lower()}{i % patients}_img{i}{suffix}"
                    folder = root / split / class_name if split else root / class_name
                    write_image(folder / name, rng, value=(40 if class_name.endswith("A") else 200))
        return root

    return build


@pytest.fixture
def folder_params(tmp_path):
    """Params for the ``folder`` data set rooted in tmp_path, grouped by the ``<class><patient>_`` prefix."""

    def make(root: Path, **overrides) -> dict:
        values = {"data_root": str(root), "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"),
                  "image_size": 16, "group_pattern": r"^([a-z]+\d+)_", **overrides}
        return load_params("folder", "quick", overrides=values)

    return make


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``python run_all.py`` on the demo profile into a tmp folder, once per session (a fresh subprocess, as a
    user runs it, in :func:`user_env`): ``(completed process, overrides, dataset folder)``. The end-to-end,
    browser, quiet and benchmark tests share it; a test that changes its outputs works on a copy."""
    import subprocess

    root = tmp_path_factory.mktemp("demo") / "out"
    # laid out as benchmarks/gpu_study.sh lays out its --out folder, so that script finds this run up to date
    overrides = ["-p", f"output_dir={root}", "-p", f"data_root={root / 'synthetic_data'}",
                 "-p", f"cache_dir={root / 'cache'}"]
    done = subprocess.run([sys.executable, str(config.PROJECT_ROOT / "run_all.py"), *overrides],
                          capture_output=True, text=True, timeout=900, cwd=config.PROJECT_ROOT, env=user_env())
    return done, overrides, root / "synthetic" / "demo"


def user_env(**extra: str) -> dict[str, str]:
    """This process's environment less the variables that quiet or loosen TensorFlow's logging, as a user's
    shell has it (so a quiet run proves medclf quiets itself), plus ``extra``."""
    from medclf.core import quiet

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", quiet.VERBOSE_ENV)}
    return {**env, **extra}
