"""Execute the notebooks top to bottom on a fresh kernel and save them with their outputs.

Usage (from the repository root)::

    python scripts/run_notebooks.py                      # every notebooks/*.ipynb, in place
    python scripts/run_notebooks.py notebooks/quickstart.ipynb
    python scripts/run_notebooks.py --check              # execute, fail on error, save nothing

The kernel is the interpreter running this script (a kernelspec pointing at
``sys.executable`` is written to a temporary directory), so the notebooks see exactly
the packages installed in this environment, whatever kernelspecs the user has.
``tests/test_notebooks.py`` uses :func:`execute_notebook` too.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "captum-gfi-notebooks"
#: the kernelspec stored in the committed notebooks (what Jupyter users get)
STORED_KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}


@functools.cache
def current_interpreter_kernel() -> str:
    """Register a kernelspec for ``sys.executable`` in a temporary Jupyter path; return its name."""
    from ipykernel.kernelspec import write_kernel_spec

    path = Path(tempfile.mkdtemp(prefix="captum-gfi-kernel-"))
    write_kernel_spec(str(path / "kernels" / KERNEL_NAME))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (str(path), os.environ.get("JUPYTER_PATH", "")) if p
    )
    return KERNEL_NAME


def execute_notebook(path: Path, timeout: int = 900) -> tuple[nbformat.NotebookNode, float]:
    """Run every cell of ``path`` in a fresh kernel (working directory: the notebook's folder).

    Raises ``nbclient.exceptions.CellExecutionError`` on the first failing cell.
    Returns the executed notebook and the wall-clock seconds it took.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=current_interpreter_kernel(),
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nb.metadata["kernelspec"] = dict(STORED_KERNELSPEC)
    return nb, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="execute only; do not save")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    total = 0.0
    for path in paths:
        nb, elapsed = execute_notebook(path.resolve())
        total += elapsed
        if not args.check:
            nbformat.write(nb, path)
        print(f"{path}: {elapsed:.1f} s{'' if args.check else ' (saved)'}", flush=True)
    print(f"total: {total:.1f} s for {len(paths)} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
