"""The install story: pyproject ranges, constraints pins and environment.yml agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return {_name(r) for r in reqs}


def environment_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(p) for p in dep.get("pip", []) if not p.startswith("-e")}
        elif not dep.startswith(("python=", "pip")) or dep.startswith("pip-"):
            names.add(_name(dep))
    return names


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_name(name)] = version
    return pins


def test_environment_yml_names_the_same_packages_as_pyproject():
    assert environment_packages() == pyproject_packages()


def test_every_dependency_has_a_tested_pin():
    pins = constraint_pins()
    missing = pyproject_packages() - set(pins)
    assert not missing, f"constraints.txt lacks pins for {sorted(missing)}"
    assert pins["torch"] == "2.14.1" and pins["torchaudio"] == "2.11.0"


def test_installed_versions_are_the_pinned_ones():
    from importlib.metadata import version

    pins = constraint_pins()
    for name in ("torch", "torchaudio", "numpy", "librosa"):
        assert version(name).split("+")[0] == pins[name], name
