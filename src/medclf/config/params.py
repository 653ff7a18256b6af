"""Parameter sets: declare, load, merge and validate.

Merge order (later wins): ``params/default.yaml`` ← ``params/datasets/<dataset>.yaml`` ←
``params/profiles/<profile>.yaml`` (its top-level keys, then its ``per_dataset.<dataset>``
section) ← command-line overrides (``-p key=value``).

Every key is declared once in :data:`medclf.config.param_specs.SPECS` with its type, its allowed values or range and its
meaning; ``default.yaml`` holds the default values. Every layer is checked as it is read; the
merged set is checked again as a whole (:func:`check_settings`: cross-key rules, ``model_overrides``)
and, by the runner, against the model registry (:func:`check_model_names`). Every problem is a
:class:`ParamError` of one line naming the key, what is wrong and what to do.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from medclf.config import datasets
from medclf.config import paths
from medclf.config.param_specs import MODEL_LIST_KEYS, MODEL_OVERRIDES, RUN_CONTROL_KEYS, SPECS, Spec


class ParamError(ValueError):
    """A parameter file or override is invalid; the message names the key and the fix."""


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(x, x.__name__) for x in (t if isinstance(t, tuple) else (t,)))


def _where(source: str | None) -> str:
    return f" (in {source})" if source else ""


def check_value(key: str, value: Any, spec: Spec, source: str | None = None) -> Any:
    """``value`` checked against ``spec`` (type, null, choices, range, list items); ints widen to float.

    Raises:
        ParamError: one line naming ``key``, what is wrong and what to give instead.
    """
    where = _where(source)
    if spec.retired and isinstance(value, (str, bool)) and value in spec.retired:
        raise ParamError(f"parameter '{key}' no longer takes {value!r}{where}: {spec.retired[value]}")
    if value is None:
        if spec.nullable:
            return None
        raise ParamError(f"parameter '{key}' must not be null{where}: give {_type_name(spec.type)}")
    expected = spec.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (expected is int or expected is float) and isinstance(value, bool) or not isinstance(value, expected):
        raise ParamError(f"parameter '{key}' must be {_type_name(expected)}, got {value!r} "
                         f"({type(value).__name__}){where}")
    if spec.choices is not None and value not in spec.choices:
        near = datasets.closest(value, map(str, spec.choices))
        raise ParamError(f"parameter '{key}' must be one of {', '.join(map(str, spec.choices))}; got {value!r}"
                         f"{where}{near}")
    if spec.low is not None or spec.high is not None:
        too_low = spec.low is not None and (value <= spec.low if spec.open_low else value < spec.low)
        too_high = spec.high is not None and (value >= spec.high if spec.open_high else value > spec.high)
        if too_low or too_high:
            raise ParamError(f"parameter '{key}' is out of range: got {value!r}{where}; give a value with "
                             f"{spec.range_text().replace('x', key, 1)}")
    if spec.items is not None:
        bad = [item for item in value if not isinstance(item, spec.items) or isinstance(item, bool)]
        if bad:
            kind = {str: "strings", int: "integers", float: "numbers"}.get(spec.items, spec.items.__name__)
            raise ParamError(f"parameter '{key}' must be a list of {kind}, but holds {bad[0]!r}"
                             f"{where}: e.g. -p '{key}=[a, b]'")
    return value


def validate(values: dict[str, Any], source: str = "parameters") -> dict[str, Any]:
    """A checked copy of ``values``; raise ParamError on an unknown key, wrong type or value out of range."""
    for key in values:
        if key not in SPECS:
            raise ParamError(f"unknown parameter '{key}' in {source}{datasets.closest(key, SPECS)}; "
                             f"valid parameters: {', '.join(sorted(SPECS))}")
    return {key: check_value(key, value, SPECS[key], source) for key, value in values.items()}


def check_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Check a complete, merged parameter set as a whole; return it.

    Every key of :data:`SPECS` must be present and valid; then the rules that tie keys together:
    the validation and test shares leave a training set, ``positive_class`` and ``split_by_image``
    name classes of ``class_names``, ``group_pattern`` compiles and has a group, and every
    ``model_overrides`` entry is a mapping of :data:`MODEL_OVERRIDES` keys with valid values.

    Raises:
        ParamError: the first problem, in one line.
    """
    missing = [key for key in SPECS if key not in params]
    if missing:
        raise ParamError(f"parameter '{missing[0]}' is missing from the settings: merge them with load_params()")
    params = validate(params, "the merged settings")
    for key in ("output_dir", "cache_dir"):
        if not params[key].strip():
            raise ParamError(f"parameter '{key}' is empty: give a folder (relative paths are taken from the project root)")
    _check_path_lengths(params)
    _check_folders_apart(params)
    if params["val_fraction"] + params["test_fraction"] >= 0.9:
        raise ParamError(f"parameters 'val_fraction' + 'test_fraction' = "
                         f"{params['val_fraction'] + params['test_fraction']:.2f} leave almost no training images: "
                         "keep their sum below 0.9")
    names = params["class_names"]
    if names is not None:
        if len(names) != 2 or len(set(names)) != 2:
            raise ParamError(f"parameter 'class_names' must name two distinct classes (negative, positive); got {names!r}")
        for key, wanted in (("positive_class", [params["positive_class"]] if params["positive_class"] else []),
                            ("split_by_image", params["split_by_image"])):
            for name in wanted:
                if name not in names:
                    raise ParamError(f"parameter '{key}' names class {name!r}, which is not in class_names "
                                     f"{names}{datasets.closest(name, names)}")
    if params["group_pattern"] is not None:
        try:
            groups = re.compile(params["group_pattern"]).groups
        except re.error as exc:
            raise ParamError(f"parameter 'group_pattern' is not a valid regular expression ({exc}): "
                             "fix it or set it to null") from None
        if groups < 1:
            raise ParamError("parameter 'group_pattern' needs a group, e.g. '^(patient\\d+)_', whose match is "
                             "the patient id")
    for model, changes in params["model_overrides"].items():
        if not isinstance(changes, dict):
            raise ParamError(f"parameter 'model_overrides.{model}' must be a mapping such as {{epochs: 10}}; "
                             f"got {changes!r}")
        for key, value in changes.items():
            if key not in MODEL_OVERRIDES:
                raise ParamError(f"parameter 'model_overrides.{model}.{key}' cannot be overridden"
                                 f"{datasets.closest(key, MODEL_OVERRIDES)}; valid: {', '.join(MODEL_OVERRIDES)}")
            check_value(f"model_overrides.{model}.{key}", value, MODEL_OVERRIDES[key])
    return params


#: Parameters that name a file or folder (``weights`` also takes imagenet or none, which pass as short names).
PATH_KEYS = ("data_root", "output_dir", "cache_dir", "weights")


def path_too_long(path: str | os.PathLike) -> str | None:
    """Why the file system would refuse ``path`` (relative ones taken from the project root) as too long
    (a name over ``NAME_MAX``, usually 255 bytes, or the whole over ``PATH_MAX``), or ``None``. Asked up front
    because the first ``exists()`` on such a path raises ``OSError: File name too long`` wherever it
    happens to be, which reads as the program's fault."""
    path = paths.resolve(path)
    existing = next((folder for folder in (path, *path.parents) if os.path.isdir(folder)), Path("/"))
    try:
        name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            return (f"holds a name of {len(os.fsencode(part))} bytes ({part[:24]}...), longer than the "
                    f"{name_max} the file system allows")
    if len(os.fsencode(str(path))) >= path_max:
        return f"is a path of {len(os.fsencode(str(path)))} bytes, longer than the {path_max} the file system allows"
    return None


def _check_path_lengths(params: dict[str, Any]) -> None:
    """Every path parameter (:data:`PATH_KEYS`) fits the file system (:func:`path_too_long`)."""
    for key in PATH_KEYS:
        if isinstance(params.get(key), str) and params[key].strip() and (why := path_too_long(params[key])):
            raise ParamError(f"parameter '{key}' {why}: give a shorter path")


def _check_folders_apart(params: dict[str, Any]) -> None:
    """The run folder (``<output_dir>/<dataset>/<profile>``) and the decode cache never sit inside the data
    root, nor the data root inside the run folder: the next run would take its own figures, tables or
    cached arrays for images (symlinks resolved, so a link cannot hide the overlap)."""
    if not params.get("data_root"):
        return
    data = paths.resolve(params["data_root"]).resolve()
    for key, folder in (("output_dir", paths.published_run_dir(params)), ("cache_dir", paths.resolve(params["cache_dir"]))):
        folder = folder.resolve()
        if folder == data or folder.is_relative_to(data):
            raise ParamError(f"parameter '{key}' puts {folder} inside the data root {data}: the next run would read "
                             f"what this one writes as images; choose another {key}, outside the data root")
        if key == "output_dir" and data.is_relative_to(folder):
            raise ParamError(f"parameter 'data_root' {data} lies inside the run folder {folder}, which runs "
                             "rewrite: move the data out of it, or choose another output_dir")


def check_model_names(params: dict[str, Any], known: Collection[str],
                      augmentable: Collection[str] | None = None) -> None:
    """Every model named in :data:`MODEL_LIST_KEYS` and as a ``model_overrides`` key is in ``known``
    (the model registry's names, passed in because the registry sits above this layer); with
    ``augmentable``, every ``augmentation_models`` entry has an augmentation setting. ``baselines`` and
    ``transfer_models`` must name at least one model: their notebooks have nothing to train, plot or
    hand on without one, and a notebook is left out with ``run_all.py --only``, not with an empty list.

    Raises:
        ParamError: naming the key, the unknown model (or the empty list) and the closest registered names.
    """
    for key in ("baselines", "transfer_models"):
        if not params[key]:  # refused here, not in the notebook, whose plan table has no rows to show
            raise ParamError(f"parameter '{key}' is empty: name at least one model (default: "
                             f"{_default_text(key)}); to leave its notebook out, keep the list and pick the other notebooks "
                             "with --only")
    for key in (*MODEL_LIST_KEYS, "model_overrides"):
        for name in params[key]:
            if name not in known:
                raise ParamError(f"parameter '{key}' names unknown model {name!r}{datasets.closest(name, known)}: "
                                 "use a name from medclf.models.registry.MODELS")
    if augmentable is not None:
        if not params["augmentation_models"]:
            raise ParamError("parameter 'augmentation_models' is empty: name at least one model with an "
                             f"augmentation setting, e.g. {next(iter(augmentable), '?')}")
        for name in params["augmentation_models"]:
            if name not in augmentable:
                raise ParamError(f"parameter 'augmentation_models' names {name!r}, which has no augmentation "
                                 f"setting, so both arms would be the same: use one of {', '.join(augmentable)}")


def _default_text(key: str) -> str:
    """``key``'s value in ``params/default.yaml`` as YAML flow text, for error messages; ``?`` when unreadable."""
    try:
        return yaml.safe_dump(read_yaml(paths.PARAMS_DIR / "default.yaml")[key], default_flow_style=True).strip()
    except (ParamError, KeyError):
        return "?"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one parameter file; a missing or malformed file is a ParamError naming it."""
    if not path.is_file():
        raise ParamError(f"parameter file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParamError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
                         "save it as UTF-8 YAML") from None
    except OSError as exc:
        raise ParamError(f"parameter file {path} cannot be read ({exc.strerror or exc}): fix its permissions") from None
    try:
        content = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(content, dict):
        raise ParamError(f"{path} must hold a mapping of parameter: value")
    return content


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` override; the value is read as YAML (``3``, ``true``, ``[a, b]``, ``null``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParamError(f"override {text!r} must look like key=value")
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if key in SPECS and SPECS[key].type is str and value is not None and not isinstance(value, str):
        value = raw.strip()
    return key, value


def load_params(dataset: str | None = None, profile: str | None = None, data_root: str | None = None,
                overrides: dict[str, Any] | None = None, params_dir: Path | None = None) -> dict[str, Any]:
    """Merge and validate the parameter set for ``dataset`` and ``profile``.

    Args:
        dataset: data set name; ``None`` keeps the default (``synthetic``).
        profile: profile name; ``None`` means the data set's ``default_profile`` (demo for synthetic
            data, quick otherwise).
        data_root: overrides ``data_root`` when given.
        overrides: final ``key: value`` overrides (e.g. parsed from ``-p key=value``).
        params_dir: folder holding ``default.yaml``, ``datasets/`` and ``profiles/``.

    Returns:
        The merged parameters, checked by :func:`check_settings`; every key of :data:`SPECS` is present.

    Raises:
        ParamError: unknown key, wrong type, value out of range, or an unknown data set or profile.
    """
    params_dir = Path(params_dir or paths.PARAMS_DIR)
    overrides = validate(dict(overrides or {}), "command-line overrides")
    merged = validate(read_yaml(params_dir / "default.yaml"), str(params_dir / "default.yaml"))
    missing = sorted(set(SPECS) - set(merged))
    if missing:
        raise ParamError(f"{params_dir / 'default.yaml'} lacks parameter '{missing[0]}': add its default value")

    dataset = check_value("dataset", dataset or overrides.get("dataset") or merged["dataset"], SPECS["dataset"])
    merged.update(_layer(params_dir / "datasets" / f"{dataset}.yaml"))
    profile = check_value("profile", profile or overrides.get("profile") or datasets.get(dataset).default_profile,
                          SPECS["profile"])
    profile_file = params_dir / "profiles" / f"{profile}.yaml"
    profile_values = read_yaml(profile_file)
    per_dataset = _per_dataset(profile_values, profile_file, dataset)
    merged.update(validate(profile_values, f"profiles/{profile}.yaml"))
    merged.update(validate(per_dataset, f"profiles/{profile}.yaml per_dataset.{dataset}"))
    merged.update(overrides)
    merged["dataset"], merged["profile"] = dataset, profile
    if data_root is not None:
        merged["data_root"] = data_root
    return check_settings(merged)


def _per_dataset(profile_values: dict[str, Any], profile_file: Path, dataset: str) -> dict[str, Any]:
    """Pop a profile's ``per_dataset`` section and return its part for ``dataset`` (``{}`` when none).

    Raises:
        ParamError: the section is not a mapping of data set name to a mapping of parameters.
    """
    section = profile_values.pop("per_dataset", None) or {}
    if not isinstance(section, dict):
        raise ParamError(f"{profile_file}: 'per_dataset' must be a mapping of data set name to parameters "
                         f"(e.g. per_dataset: {{chest_xray: {{max_epochs: 10}}}}), got a {type(section).__name__}")
    values = section.get(dataset) or {}
    if not isinstance(values, dict):
        raise ParamError(f"{profile_file}: 'per_dataset.{dataset}' must be a mapping of parameter: value "
                         f"(e.g. {{max_epochs: 10}}), got a {type(values).__name__}")
    return values


def _layer(path: Path) -> dict[str, Any]:
    return validate(read_yaml(path), str(path)) if path.exists() else {}


#: What :func:`declared_in` answers for a value no parameter file gives: ``-p`` or a caller's overrides.
USER_SOURCE = "user -p/overrides"


def declared_in(key: str, params: dict[str, Any], params_dir: Path | None = None) -> str:
    """Where the value of ``key`` in a merged set (:func:`load_params`) was declared: ``default``,
    ``dataset <name>``, ``profile <name>``, ``profile <name> per_dataset.<dataset>`` (the last layer
    that sets it), or :data:`USER_SOURCE` when its value is none of theirs.

    Read back from the files, because a merged set travels alone (the runner hands notebooks the
    values, not the overrides); a ``-p`` that repeats a file's value is credited to that file.
    """
    params_dir = Path(params_dir or paths.PARAMS_DIR)
    dataset, profile = params.get("dataset"), params.get("profile")
    profile_file = params_dir / "profiles" / f"{profile}.yaml"
    profile_values = read_yaml(profile_file) if profile_file.is_file() else {}
    per_dataset = _per_dataset(profile_values, profile_file, dataset)
    dataset_file = params_dir / "datasets" / f"{dataset}.yaml"
    layers = (("default", read_yaml(params_dir / "default.yaml")),
              (f"dataset {dataset}", read_yaml(dataset_file) if dataset_file.is_file() else {}),
              (f"profile {profile}", profile_values), (f"profile {profile} per_dataset.{dataset}", per_dataset))
    found = [(name, values[key]) for name, values in layers if key in values]
    return found[-1][0] if found and found[-1][1] == params.get(key) else USER_SOURCE



def params_hash(params: dict[str, Any]) -> str:
    """Stable short hash of a parameter set (key order does not matter; :data:`RUN_CONTROL_KEYS` left out)."""
    hashed = {key: value for key, value in params.items() if key not in RUN_CONTROL_KEYS}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()[:16]


def markdown_table() -> str:
    """The parameter reference as a Markdown table (the one in ``docs/parameters.md``)."""
    defaults = read_yaml(paths.PARAMS_DIR / "default.yaml")
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for key, spec in SPECS.items():
        kind = _type_name(spec.type) + (" or null" if spec.nullable else "")
        if spec.choices:
            kind = " \\| ".join(map(str, spec.choices))
        if spec.range_text():
            kind += f", {spec.range_text()}"
        rows.append(f"| `{key}` | {kind} | `{json.dumps(defaults.get(key))}` | {spec.help} |")
    return "\n".join(rows)
