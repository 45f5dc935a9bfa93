"""The documentation's links resolve, and docs/api.md documents every public name.

* Every relative link and image in README.md, docs/*.md and the Markdown cells of
  notebooks/*.ipynb points to an existing file, and every ``#anchor`` (same file or
  ``other.md#anchor``) is a heading of the target file (GitHub's anchor rules) or an
  explicit ``<a id=...>``. External links (``https://...``) are not fetched.
* Every public name of ``captum_gfi`` appears in docs/api.md, qualified with its
  module, and docs/api.md is what ``docs/gen_api.py`` generates from the docstrings.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api.md"
PACKAGE = "captum_gfi"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\s(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\s(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


# ------------------------------------------------------------------------ markdown
def markdown_files() -> list[Path]:
    files = sorted(DOCS.glob("*.md"))
    if (ROOT / "README.md").exists():
        files.insert(0, ROOT / "README.md")
    return files + sorted((ROOT / "notebooks").glob("*.ipynb"))


def markdown_text(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c["cell_type"] == "markdown"
        )
    return path.read_text(encoding="utf-8")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(re.sub(r"`[^`]*`", lambda m: "`" + " " * (len(m[0]) - 2) + "`", line))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation other than
    '-' and '_' removed, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(^|\s)_+|_+(\s|$)", r"\1\2", text)  # _emphasis_ markers
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    text = markdown_text(path)
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(path: Path) -> list[str]:
    found: list[str] = []
    for line in prose_lines(markdown_text(path)):
        found += INLINE_LINK.findall(line)
        found += HTML_LINK.findall(line)
        match = REF_LINK.match(line)
        if match:
            found.append(match.group(1))
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for link in links(path):
        if EXTERNAL.match(link) or link.startswith("//"):
            continue
        target, _, fragment = link.partition("#")
        target_path = (path.parent / unquote(target)).resolve() if target else path
        if not target_path.exists():
            problems.append(f"{link}: {target_path} does not exist")
            continue
        if fragment and target_path.suffix in (".md", ".ipynb"):
            if unquote(fragment).lower() not in anchors(target_path):
                problems.append(f"{link}: no heading or anchor #{fragment} in {target_path.name}")
    return problems


def test_the_docs_exist() -> None:
    for name in ("index.md", "method.md", "api.md", "howto.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_the_link_checker_catches_broken_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` section: Eq. (2)-(5)\n")
    page.write_text(
        "# Title\n\n[ok](other.md#a-code-section-eq-2-5) [ok](#title) "
        "[bad](missing.md) [bad](other.md#nope) ![bad](img.png) [bad](#nope)\n"
        "```\n[in code](ignored.md)\n```\n`[inline](ignored.md)` [web](https://example.com)\n"
    )
    problems = broken_links(page)
    assert len(problems) == 4, problems
    assert github_slug("`captum_gfi.mask.guided_input`") == "captum_gfimaskguided_input"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    problems = broken_links(path)
    assert not problems, f"broken links in {path.relative_to(ROOT)}:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------ API
def public_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            names.append(".".join(parts))
    return names


def public_names(module: str) -> list[str]:
    """``__all__`` if the module has one, else its top-level non-underscore definitions."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if targets == ["__all__"]:
                return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
            names += targets
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
    return [n for n in names if not n.startswith("_")]


def test_every_public_name_is_in_api_md() -> None:
    api = API.read_text()
    expected = [f"{m}.{n}" for m in public_modules() for n in public_names(m)]
    assert f"{PACKAGE}.GuidedFeatureInversion" in expected  # the discovery works
    missing = [name for name in expected if f"`{name}`" not in api]
    assert not missing, "not in docs/api.md (run `python docs/gen_api.py`): " + ", ".join(missing)


def test_api_md_is_up_to_date() -> None:
    assert importlib.util.find_spec(PACKAGE) is not None
    result = subprocess.run(
        [sys.executable, str(DOCS / "gen_api.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr + result.stdout


# ------------------------------------------------------------------------ wording
HISTORY = re.compile(
    r"session [0-9]|issue [0-9]|issue's|work period|research harness|tune photos", re.I
)


def test_no_page_narrates_the_projects_work_history() -> None:
    """The documents and the code speak of versions and dates, not of how the work was
    organised (numbered work periods, issue numbers)."""
    files = [
        ROOT / "README.md",
        *sorted(DOCS.glob("*.md")),
        *sorted((ROOT / PACKAGE).rglob("*.py")),
    ]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert not found, "\n".join(found)
