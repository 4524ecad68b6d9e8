"""The house's rules, read from the source: which wing of seglab/ may import which, no module
imports another package's private module or name, and the modules' imports form no cycle.

Every import counts, also one inside a function (seglab imports heavy modules late), except
those under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from seglab import REPO

# a wing -> the wings and top-level ground it may import (itself always)
GROUND = "ground"  # errors, masking, overrides, tree, checkpoint_loading, run_dirs/
COMMANDS = "commands"  # cli, evaluate, drawings, __main__, deploy/
MAY_IMPORT = {
    GROUND: {GROUND},
    "config": {GROUND},
    "checks": {GROUND, "config"},
    "run": {GROUND, "config", "checks"},
    "zoo": {GROUND, "config", "checks"},
    "data": {GROUND, "config", "checks"},
    "report": {GROUND, "config", "checks", "run"},
    COMMANDS: {GROUND, "config", "checks", "run", "zoo", "data", "report"},
    "plugins": {GROUND, "checks", "run"},
}
GROUND_MODULES = {"errors", "masking", "overrides", "tree", "checkpoint_loading", "run_dirs"}
# deploy/ reuses evaluate's checks and drawing, and only cli imports it: it sits with them
COMMAND_MODULES = {"cli", "evaluate", "drawings", "__main__", "deploy"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(p): p
    for folder in ("seglab", "hydra_plugins/seglab_plugins")
    for p in sorted((REPO / folder).rglob("*.py"))
}


def wing(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "plugins"
    if len(parts) == 1 or parts[1] in GROUND_MODULES:
        return GROUND  # `seglab` itself: REPO, CONF_DIR
    if parts[1] in MAY_IMPORT:
        return parts[1]
    assert parts[1] in COMMAND_MODULES, f"{module}: in no wing; add it to one (and to the README)"
    return COMMANDS


def type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path) -> Iterator[tuple[str, str | None]]:
    """(the seglab module imported, the name taken from it or None) for every import."""
    tree = ast.parse(path.read_text())
    skipped = type_checking_lines(tree)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, None
                elif node.module in MODULES:
                    yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None


def package(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_every_module_belongs_to_a_wing_whose_init_says_what_it_may_import():
    for folder in ("config", "checks", "run", "zoo", "data", "report", "run_dirs", "deploy"):
        doc = ast.get_docstring(ast.parse((REPO / "seglab" / folder / "__init__.py").read_text()))
        assert doc and "May import:" in doc, f"seglab/{folder}/__init__.py: no import rule"
    assert {wing(m) for m in MODULES} == set(MAY_IMPORT)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_wings_below_its_own(module):
    own = wing(module)
    above = [
        f"{target} ({wing(target)})"
        for target, _ in imports(MODULES[module])
        if wing(target) != own and wing(target) not in MAY_IMPORT[own]
    ]
    assert not above, f"{module} ({own}) imports {above}; it may import {MAY_IMPORT[own]}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_private_module_or_name_of_another_package(module):
    found = []
    for target, name in imports(MODULES[module]):
        if package(target) == package(module):
            continue  # a plugin's thin public module and its private one
        if any(private(part) for part in target.split(".")):
            found.append(target)
        if name is not None and private(name):
            found.append(f"{target}.{name}")
    assert not found, f"{module} imports private {found}"


def test_the_modules_imports_form_no_cycle():
    edges = {
        m: {t for t, _ in imports(p) if t != m and MODULES[t].name != "__init__.py"}
        for m, p in MODULES.items()
    }
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path, module]))
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(MODULES):
        visit(module, [])


def test_the_rules_see_a_violation(tmp_path, monkeypatch):
    """The reader of imports finds what the rules forbid (a test that could not fail would
    pass on any layout)."""
    path = tmp_path / "bad.py"
    path.write_text(
        "def late():\n"
        "    from seglab.run.train import main\n"
        "    from hydra_plugins.seglab_plugins._optuna import Worker\n"
        "    from seglab.zoo.generate import _evaluated\n"
    )
    found = list(imports(path))
    assert ("seglab.run.train", "main") in found
    assert ("hydra_plugins.seglab_plugins._optuna", "Worker") in found
    assert ("seglab.zoo.generate", "_evaluated") in found
    assert wing("seglab.run.train") not in MAY_IMPORT["config"]


def test_the_readme_maps_every_module_to_its_wing():
    """README's Development section: a row per folder naming each of its modules."""
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[3]
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith("| `seglab/")
    }
    for module, path in MODULES.items():
        if module.startswith("hydra_plugins") or path.stem in ("__init__", "__main__"):
            continue
        folder = path.parent.relative_to(REPO).as_posix() + "/"
        assert f"`{path.stem}`" in rows.get(folder, ""), f"README: {module} not in {folder}'s row"
