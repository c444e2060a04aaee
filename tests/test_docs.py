"""The README and docs/ pages: the commands CI runs, links that resolve, portable paths."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_anchor(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert ci.startswith("python3 -m venv .venv && ") and ci.endswith(" && pytest")
    assert ci in readme.splitlines()
    assert "kerasr upscale kerasr/samples/astronaut.png" in readme
    assert (ROOT / "kerasr" / "samples" / "astronaut.png").is_file()


def test_readme_first_screen_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 100
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    targets = LINK.findall(page.read_text())
    assert page.name == "README.md" or "../README.md" in targets
    for target in targets:
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.name}: {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_use_paths_a_user_can_adapt(page):
    text = page.read_text()
    for pattern in (
        r"/tmp/",
        r"/work/",
        r"/home/",
        r"\bseed 0\d\d\b",
        r"\bissue \d",
        r"(?<!inference)session",
    ):
        assert not re.search(pattern, text, flags=re.I), f"{page.name}: {pattern}"


@pytest.mark.parametrize("name", ["README.md", "docs", "configs", "bench"])
def test_no_path_of_one_machine(name):
    root = ROOT / name
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        text = path.read_text(errors="replace")
        assert not re.search(r"(?<![\w.])/(tmp|work|home)/", text), path.relative_to(ROOT)
