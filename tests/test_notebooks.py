"""The notebooks run top to bottom on a fresh kernel, and are committed with their outputs.

``pytest -m notebooks tests/test_notebooks.py`` executes every notebook with nbclient
(minutes on a CPU; needs the ``[notebooks]`` extra). The kernel is the interpreter running
pytest, so it works in any environment where ``pip install -e ".[test,notebooks]"`` was run.
The other tests here only read the committed files.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {"quickstart.ipynb", "class_discriminative.ipynb", "your_model.ipynb"}


def runner() -> ModuleType:
    """scripts/run_notebooks.py, which holds the execution logic."""
    path = ROOT / "scripts" / "run_notebooks.py"
    spec = importlib.util.spec_from_file_location("run_notebooks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def error_outputs(nb: dict[str, Any]) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in code_cells(nb)
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def test_the_notebooks_are_there() -> None:
    assert EXPECTED <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_from_one_top_to_bottom_run(path: Path) -> None:
    """What GitHub shows is a clean run: every code cell executed once, in order, no errors,
    and the figures are there."""
    nb = json.loads(path.read_text())
    counts = [c.get("execution_count") for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts}; refresh with python scripts/run_notebooks.py"
    )
    assert not error_outputs(nb)
    images = [
        o
        for c in code_cells(nb)
        for o in c.get("outputs", [])
        if {"image/png", "image/jpeg"} & set(o.get("data", {}))
    ]
    assert images, f"{path.name} has no figure output"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path) -> None:
    pytest.importorskip("nbclient", reason="needs the [notebooks] extra")
    nb, _ = runner().execute_notebook(path)  # raises CellExecutionError on a failing cell
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
    assert not error_outputs(nb)
