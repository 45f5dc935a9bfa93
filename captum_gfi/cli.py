"""The ``captum-gfi`` console script: one sub-command per task.

Each sub-command lives in the module that owns the work and exposes
``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``.

The modules are imported lazily: ``captum-gfi --help`` imports none of them (no torch), and
``captum-gfi COMMAND ...`` imports only COMMAND's module, whose ``add_arguments`` should
itself import nothing heavy, so that ``captum-gfi COMMAND --help`` stays fast too.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

#: sub-command -> (module implementing HELP / add_arguments / run, one-line summary for
#: ``captum-gfi --help``; the sub-command's own ``--help`` shows the module's HELP)
COMMANDS: dict[str, tuple[str, str]] = {
    "explain": (
        "captum_gfi.explain",
        "explain an image's classes with GFI next to Grad-CAM, in one figure",
    ),
    "evaluate": (
        "captum_gfi.evaluate",
        "evaluate attribution methods on localisation benchmarks",
    ),
    "bench": (
        "captum_gfi.bench",
        "time GFI against the floor of its passes and against Captum's methods",
    ),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    r"""
    The ``captum-gfi`` argument parser.

    Args:
        commands (Collection[str], optional): The sub-commands whose options are added (their
                    modules are imported); the others are listed with their summary only.
                    Default: None (every sub-command)

    Returns:
        argparse.ArgumentParser: The parser; a parsed sub-command's namespace holds its
        ``run`` function as ``_run``.
    """
    parser = argparse.ArgumentParser(
        prog="captum-gfi",
        description="Guided Feature Inversion (Du et al., KDD 2018) for Captum.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, summary) in COMMANDS.items():
        if commands is not None and name not in commands:
            sub.add_parser(name, help=summary, description=summary)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # an optional sub-command not installed
            missing = err.name or ""
            if not (module_name == missing or module_name.startswith(missing + ".")):
                raise
            continue
        cmd = sub.add_parser(name, help=summary, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    r"""Runs ``captum-gfi``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # only the named sub-command's module is imported: the first argument that is one
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(commands=[named] if named in COMMANDS else [])
    args = parser.parse_args(argv)
    from ._malloc import keep_freed_memory

    keep_freed_memory()  # the command's process only: no page faults on every step
    try:
        return int(args._run(args))
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"captum-gfi {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
