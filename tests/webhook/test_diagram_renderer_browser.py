"""The vendored Graphviz-in-WebAssembly draws parley's DOT in a browser, with no ``dot``.

``webhook/console/static/vendor/viz/viz-global.js`` is ``@viz-js/viz`` from the npm registry
(pinned below and in its README). The test takes the DOT the CLI prints for the coffee
order (``templates graph new_order --format dot``), with every ``dot`` taken off PATH,
and has Debian's chromium (driven by Playwright, as the simulator's browser test does)
turn it into SVG with the vendored file alone; then it opens the file ``--format html``
writes, offline. Every label must fit inside its box in the font the page draws with.
The screenshots stay in test-artifacts/.
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

from templates import diagrams
from tests.support.stack import BIN, ROOT
from tests.webhook.browser import ARTIFACTS, TEXT_OVERFLOW_JS, chromium, path_without_dot

VIZ_VERSION = "3.31.0"
VIZ_DIR = ROOT / "webhook" / "console" / "static" / "vendor" / "viz"
VIZ_JS = VIZ_DIR / "viz-global.js"
HIGHLIGHT = "quantity"


@pytest.fixture
def no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = path_without_dot(tmp_path)
    monkeypatch.setenv("PATH", path)  # chromium and the CLI both start with this PATH
    assert shutil.which("dot") is None
    return path


@pytest.fixture
def browser(no_dot: str) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def test_vendored_file_is_the_pinned_release() -> None:
    header = VIZ_JS.read_text()[:200]
    assert re.search(r"^Viz\.js (\S+)$", header, re.M)[1] == VIZ_VERSION
    assert f"**{VIZ_VERSION}**" in (VIZ_DIR / "README.md").read_text()
    assert "Permission is hereby granted" in (VIZ_DIR / "LICENSE").read_text()


def graph(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app webhook templates graph new_order ...`` as a user runs it (PATH as set)."""
    env = {**os.environ, "PARLEY_ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"}
    return subprocess.run(
        [str(BIN / "flask"), "--app", "webhook", "templates", "graph", "new_order", "--dir", "templates", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_new_order_dot_renders_to_svg_without_graphviz(browser: Any, no_dot: str, tmp_path: Path) -> None:
    done = graph(tmp_path, "--format", "dot", "--highlight", HIGHLIGHT)
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
    # As the simulator's page and the HTML file draw it: in the font the boxes were measured in.
    page.add_style_tag(content=f"#diagram svg text {{ font-family: {diagrams.PAGE_FONTS}; }}")
    fits = page.evaluate(TEXT_OVERFLOW_JS, page.locator("#diagram svg").element_handle())
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
    assert len(fits) == info["nodes"]
    assert [f for f in fits if f["overflow"] > -2] == []  # every label inside its box, with room


def test_html_file_from_the_cli_draws_offline_without_graphviz(browser: Any, no_dot: str, tmp_path: Path) -> None:
    svg = graph(tmp_path, "--format", "svg")
    assert svg.returncode == 1 and "--format html" in svg.stderr  # no dot: the error names what works
    out = tmp_path / "new_order.html"
    done = graph(tmp_path, "--format", "html", "--highlight", HIGHLIGHT, "-o", str(out))
    assert done.returncode == 0, done.stderr
    context = browser.new_context(viewport={"width": 900, "height": 1400}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(out.as_uri())
    current = page.locator("#diagram svg g.node.current")
    current.wait_for()
    assert current.get_attribute("id") == f"step_{HIGHLIGHT}"
    fits = page.evaluate(TEXT_OVERFLOW_JS, page.locator("#diagram svg").element_handle())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diagram-new_order-html.png"), full_page=True)
    context.close()
    assert errors == []
    assert requested == [out.as_uri()]  # the file alone: nothing else fetched
    assert len(fits) > 3 and [f for f in fits if f["overflow"] > -2] == []
