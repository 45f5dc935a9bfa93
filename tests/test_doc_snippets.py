"""Every code example in README.md and docs/*.md runs, and every command line in them parses.

* Python: the ``python`` blocks of a page run top to bottom in one namespace, as a reader
  would paste them. docs/api.md is left out: its blocks are the signatures it documents.
  Before a page's first block the names a page uses for the reader's own things are bound
  to small stand-ins: ``model`` (an untrained torchvision ResNet-18 in eval mode), ``x`` (a
  ``(1, 3, 64, 64)`` batch) and ``gfi`` (``GuidedFeatureInversion.from_model(model)``);
  every other name a block uses must come from the page. Nothing is downloaded:
  torchvision's big builders (``vgg19``, ``resnet50``, ``vit_b_16``) build small, untrained
  stand-ins of the same family, ``weights=`` ignored; ``resnet50.pth`` is such a stand-in's
  state dict in the working directory of the run.
* A block that needs a long run is marked by the line ``<!-- snippet: fast -->`` just above
  it: it runs with GFI's ``inversion_steps`` / ``target_steps`` capped at 2, Integrated
  Gradients' ``n_steps`` at 4 and the Captum metrics' ``n_perturb_samples`` at 2. A block
  marked ``<!-- snippet: cuda -->`` runs only where CUDA is available.
* Commands: every line of a ``bash``/``sh``/``console`` block that runs ``captum-gfi``
  (also as ``python -m captum_gfi.cli`` or after ``torchrun ... -m captum_gfi.cli``) is
  parsed by ``captum_gfi.cli.build_parser()``; a ``text`` block is a synopsis and is not.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from captum_gfi.cli import build_parser
from captum_gfi.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "api.md")]
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
MARK = re.compile(r"^\s*<!--\s*snippet:\s*([\w-]+)\s*-->\s*$")
SHELL = {"bash", "sh", "shell", "console"}
FAST_STEPS, FAST_IG_STEPS, FAST_PERTURBATIONS = 2, 4, 2


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    mark: str | None
    code: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    start: int | None = None
    language: str = ""
    mark: str | None = None
    body: list[str] = []
    for i, line in enumerate(lines):
        fence = FENCE.match(line)
        if start is None and fence:
            previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marked = MARK.match(previous)
            start, language, mark, body = i + 1, fence.group(2), marked and marked.group(1), []
        elif start is not None and fence and not fence.group(2):
            found.append(Block(path, start, language, mark, "\n".join(body) + "\n"))
            start = None
        elif start is not None:
            body.append(line)
    return found


# ------------------------------------------------------------------------ commands
def command_lines(block: Block) -> list[str]:
    """The block's ``captum-gfi`` command lines (continuations joined, ``$ `` and comments
    dropped), as the arguments after ``captum-gfi``."""
    text = re.sub(r"\\\n\s*", " ", block.code)
    commands: list[str] = []
    variables: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("$ ")
        assignment = re.fullmatch(r"([A-Za-z_]\w*)=(\S.*)", line)
        if assignment:  # NAME="value": $NAME in the lines below
            variables[assignment.group(1)] = shlex.split(assignment.group(2))[0]
            continue
        for name, value in variables.items():
            line = re.sub(rf"\$(\{{{name}\}}|{name}\b)", value, line)
        for part in re.split(r"&&|;|\|\|", line):
            words = shlex.split(part, comments=True)
            if words and words[0] == "captum-gfi":
                commands.append(shlex.join(words[1:]))
            elif "captum_gfi.cli" in words:
                commands.append(shlex.join(words[words.index("captum_gfi.cli") + 1 :]))
    return commands


COMMANDS = [
    pytest.param(command, id=f"{block}: captum-gfi {command[:60]}")
    for page in PAGES
    for block in blocks(page)
    if block.language in SHELL
    for command in command_lines(block)
]


def test_the_pages_have_commands_and_snippets() -> None:
    assert len(COMMANDS) >= 5  # the discovery works
    assert sum(b.language == "python" for page in PAGES for b in blocks(page)) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_command_parses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        args = build_parser().parse_args(shlex.split(command))
    except SystemExit as exit:  # argparse's message is on stderr
        pytest.fail(f"captum-gfi {command}\n{capsys.readouterr().err}")
        raise AssertionError from exit  # pragma: no cover
    assert callable(args._run)


def test_command_discovery() -> None:
    block = Block(
        ROOT / "README.md",
        1,
        "bash",
        None,
        'pip install -e . && captum-gfi explain sample:cat --target "Egyptian cat"  # c\n'
        "torchrun --nproc_per_node=2 -m captum_gfi.cli evaluate \\\n    --dataset photos\n"
        "$ captum-gfi --help\n"
        'D="--dataset grids --n 3"\ncaptum-gfi evaluate $D --quick\n',
    )
    assert command_lines(block) == [
        "explain sample:cat --target 'Egyptian cat'",
        "evaluate --dataset photos",
        "--help",
        "evaluate --dataset grids --n 3 --quick",
    ]


# ------------------------------------------------------------------------ python
def _small_vgg19(*args: Any, **kwargs: Any) -> torch.nn.Module:
    """VGG-19's layer pattern with 1/16 of its channels (its preset finds conv5_4, pool5)."""
    from torchvision.models.vgg import VGG, cfgs, make_layers

    cfg = [v if v == "M" else max(4, int(v) // 16) for v in cfgs["E"]]
    model = VGG(make_layers(cfg), num_classes=kwargs.get("num_classes", 1000))
    model.classifier = torch.nn.Linear(int(cfg[-2]) * 7 * 7, kwargs.get("num_classes", 1000))
    return model


def _small_vit_b_16(*args: Any, **kwargs: Any) -> torch.nn.Module:
    """A one-layer ViT with 16 px patches on 64 px images (the stand-in ``x``)."""
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        image_size=64, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )


def _untrained(builder: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
    @functools.wraps(builder)
    def build(*args: Any, weights: Any = None, **kwargs: Any) -> torch.nn.Module:
        return builder(*args, weights=None, **kwargs)

    return build


def _capped(method: Callable[..., Any], cap: Callable[[dict[str, Any]], None]) -> Any:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        cap(kwargs)
        return method(*args, **kwargs)

    return call


def _cap_gfi(kwargs: dict[str, Any]) -> None:
    from captum_gfi.settings import GFISettings, get_setting

    setting = kwargs.get("setting", "paper")
    s = setting if isinstance(setting, GFISettings) else get_setting(setting)
    for name in ("inversion_steps", "target_steps"):
        kwargs[name] = min(kwargs.get(name) or getattr(s, name), FAST_STEPS)


def _cap_ig(kwargs: dict[str, Any]) -> None:
    kwargs["n_steps"] = min(kwargs.get("n_steps", 50), FAST_IG_STEPS)


def _cap_perturbations(kwargs: dict[str, Any]) -> None:
    kwargs["n_perturb_samples"] = min(kwargs.get("n_perturb_samples", 10), FAST_PERTURBATIONS)


@contextlib.contextmanager
def stand_ins(monkeypatch: pytest.MonkeyPatch, fast: bool) -> Iterator[None]:
    with monkeypatch.context() as m:
        m.setattr(torchvision.models, "vgg19", _small_vgg19)
        m.setattr(torchvision.models, "resnet50", _untrained(torchvision.models.resnet18))
        m.setattr(torchvision.models, "vit_b_16", _small_vit_b_16)
        if fast:
            import captum.metrics
            from captum.attr import IntegratedGradients

            from captum_gfi import GuidedFeatureInversion

            gfi_attribute = GuidedFeatureInversion.attribute
            m.setattr(GuidedFeatureInversion, "attribute", _capped(gfi_attribute, _cap_gfi))
            ig_attribute = IntegratedGradients.attribute
            m.setattr(IntegratedGradients, "attribute", _capped(ig_attribute, _cap_ig))
            for name in ("infidelity", "sensitivity_max"):
                metric = getattr(captum.metrics, name)
                m.setattr(captum.metrics, name, _capped(metric, _cap_perturbations))
        yield


def reader_namespace() -> dict[str, Any]:
    from captum_gfi import GuidedFeatureInversion

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    return {
        "__name__": "__doc_snippet__",
        "model": model,
        "x": torch.rand(1, 3, 64, 64),
        "gfi": GuidedFeatureInversion.from_model(model),
    }


PYTHON_PAGES = [page for page in PAGES if any(b.language == "python" for b in blocks(page))]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_snippets_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    monkeypatch.chdir(tmp_path)
    if "resnet50.pth" in page.read_text(encoding="utf-8"):
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), "resnet50.pth")
    namespace = reader_namespace()
    # a snippet may register a setting (register_setting("mine", ...)): the registry is
    # restored afterwards, so no other test sees it
    saved_settings = dict(SETTINGS)
    try:
        for block in blocks(page):
            if block.language != "python":
                continue
            if block.mark == "cuda" and not torch.cuda.is_available():
                continue
            with stand_ins(monkeypatch, fast=block.mark == "fast"):
                try:
                    exec(compile(block.code, str(block), "exec"), namespace)
                except Exception as err:
                    pytest.fail(f"{block} fails: {type(err).__name__}: {err}\n{block.code}")
    finally:
        SETTINGS.clear()
        SETTINGS.update(saved_settings)
