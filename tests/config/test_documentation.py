"""The documentation stays true to the tree: every setting documented, every link and every path it names real.

The README is the front page (its configuration table documents every variable the settings read); ``docs/``
holds one page per subsystem. These checks read only files, so they cost milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# A repository path as the docs write it in code spans: a top-level folder, then path characters (a glob or a
# {a,b} alternation allowed).
_REPO_PATH = re.compile(r"^(?:api|relay|billing|web|config|tests|bench|docs|\.ci)/[A-Za-z0-9_.*{},/-]*$")


def _prose_lines(page: Path) -> list[tuple[int, str]]:
    """The page's text outside fenced code blocks, by line number: a paragraph (whose code spans may run over
    several lines) joined into one line at its first line's number; a heading or table row alone."""
    units: list[tuple[int, str]] = []
    paragraph: list[str] = []
    start, fenced = 0, False
    for number, line in enumerate([*page.read_text().splitlines(), ""], 1):
        alone = line.startswith(("#", "|"))
        if paragraph and (fenced or not line.strip() or alone or _FENCE.match(line)):
            units.append((start, " ".join(paragraph)))
            paragraph = []
        if _FENCE.match(line):
            fenced = not fenced
        elif fenced or not line.strip():
            continue
        elif alone:
            units.append((number, line))
        else:
            start = start if paragraph else number
            paragraph.append(line.strip())
    return units


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(page):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def _expand(pattern: str) -> list[str]:
    """``a/{b,c}.py`` -> ``a/b.py``, ``a/c.py`` (one level of alternation is all the docs use)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    return [alt for choice in match.group(1).split(",")
            for alt in _expand(pattern[: match.start()] + choice + pattern[match.end():])]


def test_every_environment_variable_is_documented_in_the_readme() -> None:
    source = (ROOT / "config" / "settings.py").read_text()
    variables = set(re.findall(r'"((?:SOULSEER|WEBRTC|STRIPE|DATABASE|REDIS)_[A-Z_]+)"', source))
    assert variables, "no variables found: did the settings module move?"
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in variables if f"`{v}`" not in readme)
    assert not missing, f"undocumented in README.md's configuration table: {missing}"


def test_the_readme_is_a_front_page_that_starts_with_the_two_set_up_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move reference material to docs/"
    assert lines[2:6] == [
        "```sh",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . && soulseer serve",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && pytest",
        "```",
    ]


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for page in PAGES:
        for number, line in _prose_lines(page):
            for target in _LINK.findall(_CODE_SPAN.sub("", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # an absolute URL
                path, _, anchor = target.partition("#")
                linked = (page.parent / path).resolve() if path else page
                where = f"{page.relative_to(ROOT)}:{number}: {target}"
                if not linked.exists():
                    broken.append(f"{where} (no such file)")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_repository_path_the_docs_name_exists() -> None:
    missing = []
    for page in PAGES:
        for number, line in _prose_lines(page):
            for span in _CODE_SPAN.findall(line):
                for token in re.split(r",\s+|\s+", span.strip("`").strip()):
                    if not _REPO_PATH.match(token):
                        continue
                    if not any(any(ROOT.glob(p)) if "*" in p else (ROOT / p).exists() for p in _expand(token)):
                        missing.append(f"{page.relative_to(ROOT)}:{number}: {token}")
    assert not missing, "paths the docs name that are not in the tree:\n" + "\n".join(missing)
