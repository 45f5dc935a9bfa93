"""The ``captum-gfi`` console script: one sub-command per task.

Each sub-command lives in the module that owns the work and exposes
``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> module implementing HELP / add_arguments / run
COMMANDS: dict[str, str] = {
    "explain": "captum_gfi.explain",
    "evaluate": "captum_gfi.evaluation.runner",
    "bench": "captum_gfi.benchmark",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-gfi",
        description="Guided Feature Inversion (Du et al., KDD 2018) for Captum.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # an optional sub-command not installed
            missing = err.name or ""
            if not (module_name == missing or module_name.startswith(missing + ".")):
                raise
            continue
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"captum-gfi {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
