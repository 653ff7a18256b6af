"""The notebooks' shared preamble: take the run's settings (merged once by the runner), check them, show them.

Every notebook's parameters cell holds one ``settings`` dict and its next cells call
``setup = notebook_setup(settings, "02_baselines")``:

* run by ``run_all.py``, ``settings`` is the complete, merged and checked parameter set the runner
  injected (:data:`medclf.pipeline.execute.SETTINGS_PARAMETER`): it is checked again and used as it
  is, nothing is merged;
* run alone (JupyterLab, or ``papermill -y "settings: {dataset: chest_xray}"``), ``settings`` is a
  request, ``dataset``, ``profile``, ``data_root`` and any parameter overrides, merged exactly as
  the runner would (:func:`medclf.pipeline.plan.resolve_settings`).

Under the runner the notebook's outputs go to a staging folder published when it succeeds
(:mod:`medclf.pipeline.staging`); ``NotebookRun.paths`` is that folder, which also holds the earlier
notebooks' published outputs. Run alone, ``paths`` is the run folder and every write lands there at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from medclf.config.paths import RunPaths, published_run_dir
from medclf.config.param_specs import SPECS
from medclf.config.params import check_model_names
from medclf.config.settings import Settings
from medclf.pipeline import plan
from medclf.reporting import artifacts


@dataclass(frozen=True)
class NotebookRun:
    """What a notebook works with: its name, the typed settings, the flat parameter dict and its output layout."""

    notebook: str
    settings: Settings
    params: dict[str, Any]
    paths: RunPaths


def run_settings(settings: dict[str, Any] | None) -> Settings:
    """The checked :class:`Settings` of a notebook's ``settings`` parameter (see the module docstring).

    Raises:
        ParamError: a missing, unknown or invalid key, or an unknown model name.
    """
    given = dict(settings or {})
    if set(SPECS) <= set(given):
        checked = Settings.from_params(given)
        known, augmentable = plan.registered_models()
        check_model_names(checked.as_params(), known, augmentable)
        return checked
    dataset, profile, data_root = (given.pop(key, None) for key in ("dataset", "profile", "data_root"))
    return plan.resolve_settings(dataset, profile, data_root, given)


def notebook_setup(settings: dict[str, Any] | None, notebook: str, show: Sequence[str] | str = (),
                   notice: str = "numbers") -> NotebookRun:
    """The one preamble of every notebook: checked settings, pandas display options, a print of
    the run (data set, profile, output folder and the ``show`` keys, ``"all"`` for every key) and,
    for generated data, the synthetic-data notice about the notebook's ``notice`` subject.

    Args:
        settings: the notebook's ``settings`` parameter.
        notebook: the notebook's stem, e.g. ``"02_baselines"`` (names its figure folder).
        show: parameter keys to print, or ``"all"``.
        notice: what the synthetic-data notice says is not medical: ``"numbers"``, ``"images"``, ...
    """
    checked = run_settings(settings)
    params = checked.as_params()
    layout = RunPaths.of(params)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)
    # The published folder only: a staging folder is gone once the run publishes, so a report naming it
    # would point the reader at a path that no longer exists.
    print(f"{notebook}: dataset {checked.dataset}, profile {checked.profile}, outputs {published_run_dir(params)}")
    for key in (list(params) if show == "all" else show):
        print(f"  {key:28} {params[key]!r}")
    artifacts.show_synthetic_notice(params, notice)
    return NotebookRun(notebook, checked, params, layout)
