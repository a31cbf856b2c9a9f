"""What the browser tests share: Debian's chromium driven by Playwright, and a PATH without Graphviz.

Playwright's own browser download is never used (``.ci/run`` installs Debian's chromium).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.services import service_missing
from tests.support.stack import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GRAPHVIZ_PROGRAMS = ("dot", "neato", "circo", "fdp", "sfdp", "twopi", "osage", "patchwork")

# In the page: for every node, how far its widest text runs past the right edge of its box
# (negative: room to spare). Graphviz sized the boxes; the browser drew the text.
TEXT_OVERFLOW_JS = """(root) => [...root.querySelectorAll("g.node")].map((node) => {
    const box = node.querySelector("path, polygon, ellipse").getBBox();
    const right = Math.max(...[...node.querySelectorAll("text")].map((t) => { const b = t.getBBox(); return b.x + b.width; }));
    return { id: node.id, overflow: right - (box.x + box.width) };
})"""


def path_without_dot(tmp: Path) -> str:
    """PATH with each directory holding Graphviz replaced by a folder of links that leaves it out."""
    parts = []
    for n, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        folder = Path(entry)
        if not (folder / "dot").exists():
            parts.append(entry)
            continue
        shadow = tmp / f"path{n}"
        shadow.mkdir(parents=True)
        for program in folder.iterdir():
            if program.name not in GRAPHVIZ_PROGRAMS:
                (shadow / program.name).symlink_to(program)
        parts.append(str(shadow))
    return os.pathsep.join(parts)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright; a missing one (or missing Playwright) is
    ``service_missing``: a failure when ``CI=true``, a visible skip otherwise."""
    if not CHROMIUM.exists():
        service_missing("Debian chromium (apt-get install chromium)", FileNotFoundError(str(CHROMIUM)))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing("playwright (pip)", exc)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
