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


def test_every_command_line_entry_point_is_a_main_function():
    import importlib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"course-train", "course-data", "hw2-grade"} <= set(scripts)
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        func = getattr(importlib.import_module(module), attr)
        assert callable(func) and func.__name__ == "main", f"{name} -> {target}"


def test_grading_is_installed_with_its_data():
    import glob

    setuptools_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "grading*" in setuptools_cfg["packages"]["find"]["include"]
    patterns = setuptools_cfg["package-data"]["grading"]
    shipped = {Path(p).relative_to(ROOT / "grading").as_posix()
               for pat in patterns for p in glob.glob(str(ROOT / "grading" / pat), recursive=True)}
    assert {"thresholds.toml", "assets/loops_reference.npz", "source/hw2/hw2.ipynb"} <= shipped


def test_grading_check_runs_from_any_folder(tmp_path):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-m", "grading", "check", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "your hw2/ folder" in out.stdout


def test_grading_check_finds_the_hw2_folder_from_the_repository_or_from_inside_it(tmp_path):
    from grading.__main__ import _default_hw2_folder

    (tmp_path / "hw2").mkdir()
    (tmp_path / "hw2" / "hw2.ipynb").write_text("{}")
    assert _default_hw2_folder(tmp_path) == tmp_path / "hw2"
    assert _default_hw2_folder(tmp_path / "hw2") == tmp_path / "hw2"
