"""environment.yml and pyproject.toml list the same requirements."""

from __future__ import annotations

import tomllib

import yaml

from medclf.config import paths as config


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((config.PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((config.PROJECT_ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    listed = {req for req in pip_section if not req.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
