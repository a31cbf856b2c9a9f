"""The vendored Graphviz-in-WebAssembly draws parley's DOT in a browser, with no ``dot``.

``webhook/static/vendor/viz/viz-global.js`` is ``@viz-js/viz`` from the npm registry
(pinned below and in its README). The test takes the DOT the CLI prints for the coffee
order (``templates graph new_order --format dot``), with every ``dot`` taken off PATH,
and has Debian's chromium (driven by Playwright, as the simulator's browser test does)
turn it into SVG with the vendored file alone. The screenshot stays in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import service_missing
from tests.support.stack import BIN, ROOT

VIZ_VERSION = "3.31.0"
VIZ_DIR = ROOT / "webhook" / "static" / "vendor" / "viz"
VIZ_JS = VIZ_DIR / "viz-global.js"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GRAPHVIZ_PROGRAMS = ("dot", "neato", "circo", "fdp", "sfdp", "twopi", "osage", "patchwork")
HIGHLIGHT = "quantity"


def path_without_dot(tmp: Path) -> str:
    """PATH with each directory holding Graphviz replaced by a copy of links that leaves it out."""
    parts = []
    for n, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        folder = Path(entry)
        if not (folder / "dot").exists():
            parts.append(entry)
            continue
        shadow = tmp / f"path{n}"
        shadow.mkdir()
        for program in folder.iterdir():
            if program.name not in GRAPHVIZ_PROGRAMS:
                (shadow / program.name).symlink_to(program)
        parts.append(str(shadow))
    return os.pathsep.join(parts)


@pytest.fixture
def no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = path_without_dot(tmp_path)
    monkeypatch.setenv("PATH", path)  # chromium and the CLI both start with this PATH
    assert shutil.which("dot") is None
    return path


@pytest.fixture
def browser(no_dot: str) -> Iterator[Any]:
    if not CHROMIUM.exists():
        service_missing("Debian chromium (apt-get install chromium)", FileNotFoundError(str(CHROMIUM)))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing("playwright (pip)", exc)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_vendored_file_is_the_pinned_release() -> None:
    header = VIZ_JS.read_text()[:200]
    assert re.search(r"^Viz\.js (\S+)$", header, re.M)[1] == VIZ_VERSION
    assert f"**{VIZ_VERSION}**" in (VIZ_DIR / "README.md").read_text()
    assert "Permission is hereby granted" in (VIZ_DIR / "LICENSE").read_text()


def test_new_order_dot_renders_to_svg_without_graphviz(browser: Any, no_dot: str, tmp_path: Path) -> None:
    env = {**os.environ, "PARLEY_ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"}
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "webhook", "templates", "graph", "new_order", "--format", "dot",
         "--highlight", HIGHLIGHT, "--dir", "templates"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dot = done.stdout
    node_ids = re.findall(r'^  "([^"]+)" \[id=', dot, re.M)
    assert f"step_{HIGHLIGHT}" in node_ids, dot[:500]

    page_file = tmp_path / "render.html"
    page_file.write_text(
        "<!doctype html><meta charset=utf-8><body style='background:#fff'>"
        f"<script src='{VIZ_JS.as_uri()}'></script><div id=diagram></div>"
    )
    page = browser.new_page(viewport={"width": 900, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_file.as_uri())
    info = page.evaluate(
        """async (dot) => {
            const viz = await Viz.instance();
            const svg = viz.renderSVGElement(dot);
            document.getElementById("diagram").appendChild(svg);
            const current = svg.querySelectorAll("g.node.current");
            return {
                graphviz: viz.graphvizVersion,
                nodes: svg.querySelectorAll("g.node").length,
                edges: svg.querySelectorAll("g.edge").length,
                current: current.length,
                currentId: current.length ? current[0].id : null,
                currentFill: current.length ? current[0].querySelector("path,polygon").getAttribute("fill") : null,
                width: svg.getBoundingClientRect().width,
                text: svg.textContent,
            };
        }""",
        dot,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diagram-new_order-wasm.png"), full_page=True)
    page.close()

    assert errors == []
    assert info["nodes"] == len(node_ids) and info["nodes"] > 3
    assert info["edges"] == dot.count(" -> ")
    assert info["current"] == 1 and info["currentId"] == f"step_{HIGHLIGHT}"
    assert info["currentFill"] not in (None, "none", "white", "#ffffff")
    assert info["width"] > 100
    for step in ("initial", "quantity", "confirmation", "complete"):
        assert step in info["text"]
