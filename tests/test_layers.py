"""The layering of ``course_lib`` (ARCHITECTURE.md): a module imports only from its own layer or below.

Every ``import`` statement of every module is read with :mod:`ast` (at module level, inside functions,
classes and ``if`` blocks alike). Two rules:

* **downward only**: ``course_lib.<layer>...`` imports nothing from a layer above ``<layer>``
  (``grading`` counts as the top: the library never imports the grader);
* **no hidden first-party imports**: an import placed inside a function is allowed only for a third-party
  package (optional or heavy: tqdm, sklearn, IPython, ...), never for ``course_lib`` or ``grading``:
  inside a function it would only hide a cycle or an upward import from the reader.

``ALLOWED`` lists today's known exceptions, each with its reason. It may only shrink: an entry that no
longer occurs fails the test too, so whoever fixes one removes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"

# bottom up; modules of one layer may import each other. ``course_lib`` itself (DEFAULT_SR) is below all.
LAYERS: tuple[str, ...] = ("audio", "spectral", "synth", "tsm", "plot", "data", "runtime", "models", "train",
                           "metrics", "hw2")
TOP = len(LAYERS)  # grading, lessons

# (importer, imported, "up" | "in function"): the shrinking list of known exceptions.
ALLOWED: dict[tuple[str, str, str], str] = {}


def module_name(path: Path) -> str:
    """``course_lib/models/wavenet.py`` -> ``course_lib.models.wavenet`` (a package by its ``__init__``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[str, bool, int]]:
    """Every imported module of ``source`` as ``(absolute name, inside a function?, line)``.

    ``from a.b import c`` counts as ``a.b.c`` (``c`` may be a module); relative imports are resolved
    against ``module``.
    """
    tree = ast.parse(source)
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base[:len(base) - child.level + (1 if is_package else 0)]
                    source_module = ".".join(base + ([child.module] if child.module else []))
                else:
                    source_module = child.module or ""
                found.extend((f"{source_module}.{alias.name}", in_function, child.lineno) for alias in child.names)
            visit(child, inside)

    visit(tree, False)
    return found


def layer_of(name: str) -> int | None:
    """The layer index of a first-party module (``None``: third party or the standard library)."""
    parts = name.split(".")
    if parts[0] == "grading":
        return TOP
    if parts[0] != "course_lib":
        return None
    if len(parts) == 1 or parts[1] not in LAYERS:
        return -1  # the package root (DEFAULT_SR, __version__) or a name taken from it
    return LAYERS.index(parts[1])


def owner(name: str) -> str:
    """The module an imported name belongs to: its longest prefix that is a file or package of the repository."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        path = ROOT.joinpath(*parts[:n])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts[:n])
    return name


def violations() -> dict[tuple[str, str, str], str]:
    """``{(importer, imported module, kind): "file:line"}`` for every import that breaks a rule."""
    out: dict[tuple[str, str, str], str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for name, in_function, line in imports_of(path.read_text(), module, path.name == "__init__.py"):
            level = layer_of(name)
            if level is None:
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if level > own:
                out.setdefault((module, owner(name), "up"), where)
            elif in_function:
                out.setdefault((module, owner(name), "in function"), where)
    return out


def test_every_course_lib_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert packages <= set(LAYERS), f"place {sorted(packages - set(LAYERS))} in LAYERS (and ARCHITECTURE.md)"


def test_the_reader_finds_upward_and_hidden_imports():
    source = ("import torch\nfrom course_lib import DEFAULT_SR\nfrom course_lib.audio import mu_law\n"
              "from . import wavenet\n"
              "def f():\n    from course_lib.train.checkpoint import save_checkpoint\n    import tqdm\n")
    found = imports_of(source, "course_lib.models.gansynth")
    assert found == [("torch", False, 1), ("course_lib.DEFAULT_SR", False, 2), ("course_lib.audio.mu_law", False, 3),
                     ("course_lib.models.wavenet", False, 4),
                     ("course_lib.train.checkpoint.save_checkpoint", True, 6), ("tqdm", True, 7)]
    assert imports_of("from .loop import fit\n", "course_lib.train", is_package=True) == [
        ("course_lib.train.loop.fit", False, 1)]
    assert [layer_of(n) for n, _, _ in found] == [None, -1, 0, LAYERS.index("models"), LAYERS.index("train"), None]
    assert layer_of("grading.reference") == TOP


def test_no_import_runs_up_a_layer_or_hides_in_a_function():
    found = violations()
    new = {key: where for key, where in found.items() if key not in ALLOWED}
    assert not new, "imports that break the layering (ARCHITECTURE.md):\n" + "\n".join(
        f"  {where}: {a} -> {b} ({kind})" for (a, b, kind), where in sorted(new.items(), key=lambda kv: kv[1]))


def test_the_allow_list_only_shrinks():
    stale = sorted(set(ALLOWED) - set(violations()))
    assert not stale, f"these exceptions are gone; remove them from ALLOWED: {stale}"
