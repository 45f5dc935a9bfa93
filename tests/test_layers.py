"""The package's layers import only downwards, and no import cycle exists.

Every module's imports are read from its source (``ast``: module-level, function-level and
``TYPE_CHECKING`` imports alike), so the check needs no import of torch. The table below is
the one place that says which layer a module belongs to (docs/index.md shows it too).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: layer name -> rank; a module may import modules of its own rank or below
LAYERS: dict[str, int] = {"core": 0, "evaluation": 1, "demo": 2, "commands": 3, "scripts": 4}

#: module -> layer; a module missing here fails test_every_module_has_a_layer
MODULES: dict[str, str] = {
    # the method: Captum class, equations, settings, layer presets
    "captum_gfi": "core",
    "captum_gfi._hooks": "core",
    "captum_gfi._validation": "core",
    "captum_gfi.background": "core",
    "captum_gfi.guided_feature_inversion": "core",
    "captum_gfi.mask": "core",
    "captum_gfi.objectives": "core",
    "captum_gfi.presets": "core",
    "captum_gfi.reshape": "core",
    "captum_gfi.settings": "core",
    "captum_gfi.stages": "core",
    # the evaluation library: metrics, data sets and cases, methods, records, statistics
    "captum_gfi.evaluation": "evaluation",
    "captum_gfi.evaluation.adversarial": "evaluation",
    "captum_gfi.evaluation.benchmark_data": "evaluation",
    "captum_gfi.evaluation.benchmark_metrics": "evaluation",
    "captum_gfi.evaluation.benchmark_report": "evaluation",
    "captum_gfi.evaluation.captum_metrics": "evaluation",
    "captum_gfi.evaluation.cases": "evaluation",
    "captum_gfi.evaluation.datasets": "evaluation",
    "captum_gfi.evaluation.distributed": "evaluation",
    "captum_gfi.evaluation.localization": "evaluation",
    "captum_gfi.evaluation.methods": "evaluation",
    "captum_gfi.evaluation.peers": "evaluation",
    "captum_gfi.evaluation.perturbation_curves": "evaluation",
    "captum_gfi.evaluation.photos": "evaluation",
    "captum_gfi.evaluation.pointing": "evaluation",
    "captum_gfi.evaluation.quantus_adapter": "evaluation",
    "captum_gfi.evaluation.rank_correlation": "evaluation",
    "captum_gfi.evaluation.records": "evaluation",
    "captum_gfi.evaluation.report": "evaluation",
    "captum_gfi.evaluation.run_options": "evaluation",
    "captum_gfi.evaluation.runner": "evaluation",
    "captum_gfi.evaluation.benchmark_runner": "evaluation",
    "captum_gfi.evaluation.saliency_metrics": "evaluation",
    "captum_gfi.evaluation.sanity": "evaluation",
    "captum_gfi.evaluation.stats": "evaluation",
    "captum_gfi.evaluation._thumbnails": "evaluation",
    # demo assets: the one model loader, sample images, the one toy net, figures
    "captum_gfi.demo": "demo",
    "captum_gfi.demo.models": "demo",
    "captum_gfi.demo.toy": "demo",
    "captum_gfi.demo.samples": "demo",
    "captum_gfi.figure": "demo",
    # the commands: argument parsing and runs
    "captum_gfi.cli": "commands",
    "captum_gfi._malloc": "commands",
    "captum_gfi.explain": "commands",
    "captum_gfi.bench": "commands",
    "captum_gfi.evaluate": "commands",
}


def _package_modules() -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / "captum_gfi").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _script_files() -> list[Path]:
    return sorted(p for folder in ("scripts", "research") for p in (REPO / folder).rglob("*.py"))


def _imports(path: Path, module: str) -> set[str]:
    """The captum_gfi modules ``path`` imports (``from X import name`` counts as ``X.name``
    when that is a module)."""
    known = _package_modules()
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in targets:
            while name and name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                names.add(name)
    return names


def _graph() -> dict[str, set[str]]:
    return {m: _imports(p, m) for m, p in _package_modules().items()}


def test_every_module_has_a_layer() -> None:
    modules = set(_package_modules())
    assert modules - set(MODULES) == set(), "add the new module to MODULES"
    assert set(MODULES) - modules == set(), "remove the deleted module from MODULES"
    assert set(MODULES.values()) <= set(LAYERS)


def test_no_import_runs_back_up_a_layer() -> None:
    upward = [
        f"{m} ({MODULES[m]}) imports {n} ({MODULES[n]})"
        for m, deps in _graph().items()
        for n in sorted(deps)
        if LAYERS[MODULES[n]] > LAYERS[MODULES[m]]
    ]
    assert upward == []


def test_scripts_import_the_package_only() -> None:
    for path in _script_files():
        for name in _imports(path, "__script__"):
            assert name in MODULES, f"{path.relative_to(REPO)} imports unknown {name}"


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if n == m.rpartition(".")[0] or m == n.rpartition(".")[0]:
                continue  # a package and its own submodule: Python's import order handles it
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_check_sees_imports() -> None:
    # the reader resolves relative, absolute and function-level imports
    graph = _graph()
    assert "captum_gfi.evaluation.methods" in graph["captum_gfi.evaluation.runner"]
    assert "captum_gfi.evaluation.photos" in graph["captum_gfi.evaluation.datasets"]
    assert "captum_gfi.guided_feature_inversion" in graph["captum_gfi.bench"]


def test_docs_index_shows_the_layer_table() -> None:
    rows = {}
    names = {"core": "core", "evaluation library": "evaluation", "demo assets": "demo",
             "commands": "commands", "scripts and research": "scripts"}  # fmt: skip
    text = (REPO / "docs" / "index.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in names:
            rows[names[cells[0]]] = set(re.findall(r"`([^`]+)`", cells[1]))
    assert set(rows) == set(LAYERS)
    for module, layer in MODULES.items():
        path = _package_modules()[module].relative_to(REPO / "captum_gfi").as_posix()
        assert path in rows[layer], f"docs/index.md: {path} is not in the {layer} row"
    listed = set().union(*rows.values())
    assert len(listed) == len(MODULES) + 2  # the modules, scripts/ and research/


def test_the_evaluation_library_parses_no_arguments() -> None:
    # the commands parse; the library's runners take EvaluateOptions
    parsing = []
    for module, layer in MODULES.items():
        if layer != "evaluation":
            continue
        tree = ast.parse(_package_modules()[module].read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            if "argparse" in names:
                parsing.append(module)
    assert parsing == []
