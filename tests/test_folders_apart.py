"""The run folder, the decode cache and the data root never overlap: a run would ingest what it writes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medclf.config import paths
from medclf.config.params import ParamError, load_params


@pytest.mark.parametrize("overrides, said", [
    ({"output_dir": "{data}/out"}, "parameter 'output_dir' puts"),
    ({"cache_dir": "{data}/cache"}, "parameter 'cache_dir' puts"),
    ({"output_dir": "{tmp}/o", "data_root": "{tmp}/o/folder/quick/images"}, "parameter 'data_root'"),
])
def test_overlapping_folders_are_refused_in_one_line(tmp_path, overrides, said):
    values = {"data_root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "c"), "output_dir": str(tmp_path / "o2")}
    values.update({k: v.format(data=tmp_path / "data", tmp=tmp_path) for k, v in overrides.items()})
    with pytest.raises(ParamError, match=said) as info:
        load_params("folder", "quick", overrides=values)
    assert "\n" not in str(info.value)


def test_a_symlink_cannot_hide_the_overlap(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    with pytest.raises(ParamError, match="inside the data root"):
        load_params("folder", "quick", overrides={"data_root": str(tmp_path / "link"),
                                                  "output_dir": str(tmp_path / "data" / "out"),
                                                  "cache_dir": str(tmp_path / "c")})


def test_folders_side_by_side_are_fine(tmp_path):
    params = load_params("folder", "quick", overrides={"data_root": str(tmp_path / "data"),
                                                       "output_dir": str(tmp_path / "out"),
                                                       "cache_dir": str(tmp_path / "cache")})
    assert params["output_dir"] == str(tmp_path / "out")


def test_run_all_refuses_an_output_folder_inside_the_data_root(tmp_path):
    """As a user meets it: a fresh process, one line, exit 2, nothing written."""
    (tmp_path / "data").mkdir()
    done = subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--dataset", "folder",
                           "--data-root", str(tmp_path / "data"), "-p", f"output_dir={tmp_path / 'data' / 'out'}",
                           "-p", f"cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, timeout=120, cwd=paths.PROJECT_ROOT)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "inside the data root" in lines[0], done.stderr
    assert not (tmp_path / "data" / "out").exists()
