"""A template drawn as a diagram: steps, the options on the edges, switches, ends.

Built from the :class:`TemplateDef` the engine runs and from ``lint.transitions`` (the
moves the engine can actually make), so a diagram can never drift from the flow. Output
is Mermaid text, Graphviz DOT (pure Python), or a self-contained HTML page that lays the
DOT out in the browser with Graphviz compiled to WebAssembly (nothing to install). SVG
and PNG files come from Debian's ``dot`` binary when it is installed (``apt-get install
graphviz``); it is an option, never a requirement.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import textwrap
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from templates.lint import YES_NO, transitions
from templates.schema import ALIAS_SUFFIX, INITIAL, HttpAction, Step, TemplateDef, Validation

NodeKind = Literal["start", "step", "template", "end"]
EdgeKind = Literal["entry", "answer", "invalid", "switch", "end"]
Format = Literal["svg", "png"]

LINE = 42  # characters per label line: keeps boxes narrow enough to sit side by side
HIGHLIGHT_FILL, HIGHLIGHT_STROKE = "#d9fdd3", "#008069"  # WhatsApp's own greens
# Graphviz sizes boxes from its own table of this font's widths (it has one for DejaVu
# Sans, and none for a list of fallbacks), so the page must draw the text in it; where
# it is missing, the fallbacks are narrower, and text still fits its box.
FONT = "DejaVu Sans"
PAGE_FONTS = '"DejaVu Sans", Arial, Helvetica, sans-serif'


class GraphvizMissing(RuntimeError):
    """``dot`` is not installed; the message names what works without it."""


@dataclass(frozen=True)
class Node:
    id: str  # stable: ``step_<name>``, ``template_<name>``, ``start``, ``end`` (also the SVG id)
    kind: NodeKind
    title: str
    lines: tuple[str, ...] = ()
    step: str | None = None


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind
    label: str = ""


@dataclass(frozen=True)
class FlowGraph:
    template: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


def step_id(name: str) -> str:
    return f"step_{name}"


def _short(text: str, width: int = LINE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe_validation(v: Validation) -> str:
    """``number ≤ 50``, ``text 5–1000 chars``, ``regex ^ORD…``: what an answer must be."""
    out = v.type
    if v.min is not None and v.max is not None:
        out += f" {v.min:g}–{v.max:g}"
    elif v.min is not None:
        out += f" ≥ {v.min:g}"
    elif v.max is not None:
        out += f" ≤ {v.max:g}"
    if v.min_length is not None or v.max_length is not None:
        out += f" {v.min_length or 0}–{v.max_length or '∞'} chars"
    if v.pattern:
        out += f" {_short(v.pattern, 24)}"
    return out


def _action(step: Step) -> str | None:
    if isinstance(step.action, HttpAction):
        return f"action: POST {_short(step.action.http, 32)}"
    return f"action: {step.action}" if step.action else None


def _step_lines(t: TemplateDef, name: str) -> tuple[str, ...]:
    step = t.steps[name]
    lines: list[str] = []
    if name == INITIAL:
        entry = t.menu_structure
        lines.append(f"entry {entry.type}: {_short(entry.body.text)}")
    if action := _action(step):
        lines.append(action)
    if step.prompt:
        lines.append(f"prompt: {_short(step.prompt)}")
    if step.message is not None:
        body = step.message.body.text
        lines.append(f"{step.message.type}: {_short(body)}")
    if step.validation is not None:
        lines.append(f"validation: {describe_validation(step.validation)}")
    if step.context_key:
        lines.append(f"stores: {step.context_key}")
    if step.end_conversation:
        lines.append("ends the conversation")
    if step.handoff:
        lines.append("hands the customer to a person")
    return tuple(lines)


def _target(t: TemplateDef, target: str, known: Collection[str] | None) -> tuple[str, bool]:
    """(name, is_template): a step of ``t``, else a template (``<name>_flow`` is an alias)."""
    if target in t.steps:
        return target, False
    if known is not None and target in known:
        return target, True
    if target.endswith(ALIAS_SUFFIX):
        return target[: -len(ALIAS_SUFFIX)], True
    return target, True


def _answer_labels(t: TemplateDef, name: str) -> dict[str, list[str]]:
    """Transition field (``next_step`` / ``next_steps.<id>``) → what the customer sends."""
    step = t.steps[name]
    options = t.step_options(name)
    branches = step.next_steps or {}
    labels: dict[str, list[str]] = {}
    if options:
        for o in options:
            field = f"next_steps.{o.id}" if o.id in branches else "next_step"
            labels.setdefault(field, []).append(o.title)
    elif step.validation is not None and step.validation.type == "yes_no":
        for answer in YES_NO:
            field = f"next_steps.{answer}" if answer in branches else "next_step"
            labels.setdefault(field, []).append(answer)
    else:
        what = describe_validation(step.validation) if step.validation is not None else "any text"
        labels["next_step"] = [f"valid {what}" if step.validation is not None else what]
    return labels


def _wrap(parts: list[str]) -> str:
    return "\n".join(textwrap.wrap(", ".join(parts), 28)) or ""


def build_graph(t: TemplateDef, known_templates: Collection[str] | None = None) -> FlowGraph:
    """The template as nodes and edges, in a stable order (same flow, same diagram)."""
    keywords = ", ".join(t.trigger_keywords)
    nodes: dict[str, Node] = {
        "start": Node("start", "start", "start", (f"keywords: {keywords}",) if keywords else ("from another flow",))
    }
    edges: list[Edge] = [Edge("start", step_id(INITIAL), "entry", "sends the entry message")]
    for name in t.steps:
        nodes[step_id(name)] = Node(step_id(name), "step", name, _step_lines(t, name), step=name)
    for name, step in t.steps.items():
        if step.end_conversation:
            nodes.setdefault("end", Node("end", "end", "end"))
            edges.append(Edge(step_id(name), "end", "end"))
            continue
        if step.handoff:  # a leaf: a person takes over, and after release the customer starts afresh
            continue
        if step.validation is not None and not t.step_options(name):
            error = f"\n{_short(step.error, 24)}" if step.error else ""
            edges.append(Edge(step_id(name), step_id(name), "invalid", f"invalid{error}"))
        labels = _answer_labels(t, name)
        for field, raw_target in transitions(t, name):
            target, is_template = _target(t, raw_target, known_templates)
            if is_template:
                node_id = f"template_{target}"
                nodes.setdefault(node_id, Node(node_id, "template", target, ("switch to template",)))
            else:
                node_id = step_id(target)
            kind: EdgeKind = "switch" if is_template else "answer"
            edges.append(Edge(step_id(name), node_id, kind, _wrap(labels.get(field, []))))
    return FlowGraph(t.template_name, tuple(nodes.values()), tuple(edges))


# --- Mermaid ---------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    # Inside a quoted Mermaid label only these need entity codes.
    escaped = text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return escaped.replace("\n", "<br/>")


def _mermaid_id(node_id: str) -> str:
    # Mermaid ids are bare words, and "end" is a keyword.
    return "done" if node_id == "end" else node_id


def to_mermaid(graph: FlowGraph, highlight: str | None = None) -> str:
    """``flowchart TD`` text; ``highlight`` (a step name) gets the ``current`` class."""
    out = ["flowchart TD"]
    shapes = {"start": ('(["', '"])'), "step": ('["', '"]'), "template": ('[["', '"]]'), "end": ('(("', '"))')}
    for n in graph.nodes:
        title = f"<b>{_mermaid_text(n.title)}</b>" if n.kind == "step" else _mermaid_text(n.title)
        label = "<br/>".join([title, *(_mermaid_text(line) for line in n.lines)])
        left, right = shapes[n.kind]
        out.append(f"    {_mermaid_id(n.id)}{left}{label}{right}")
    for e in graph.edges:
        arrow = "-.->" if e.kind in {"invalid", "switch"} else "-->"
        label = f'|"{_mermaid_text(e.label)}"|' if e.label else ""
        out.append(f"    {_mermaid_id(e.source)} {arrow}{label} {_mermaid_id(e.target)}")
    out.append(f"    classDef current fill:{HIGHLIGHT_FILL},stroke:{HIGHLIGHT_STROKE},stroke-width:3px")
    out.append("    classDef template stroke-dasharray: 4 3")
    templates = [_mermaid_id(n.id) for n in graph.nodes if n.kind == "template"]
    if templates:
        out.append(f"    class {','.join(templates)} template")
    if highlight and step_id(highlight) in {n.id for n in graph.nodes}:
        out.append(f"    class {_mermaid_id(step_id(highlight))} current")
    return "\n".join(out) + "\n"


# --- Graphviz --------------------------------------------------------------------


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html_label(node: Node) -> str:
    rows = [f"<B>{html.escape(node.title)}</B>"]
    rows += [f'<FONT POINT-SIZE="10">{html.escape(line)}</FONT>' for line in node.lines]
    return "<" + '<BR ALIGN="LEFT"/>'.join(rows) + '<BR ALIGN="LEFT"/>>'


NODE_STYLE = {
    "start": 'shape=box style="rounded,filled" fillcolor="#e7f3ff" color="#5b8fd1"',
    "step": 'shape=box style="rounded,filled" fillcolor="#ffffff" color="#8696a0"',
    "template": 'shape=box style="rounded,dashed,filled" fillcolor="#fff7e0" color="#c58a00"',
    "end": 'shape=doublecircle style=filled fillcolor="#f0f2f5" color="#54656f" fontsize=10 width=0.5',
}
EDGE_STYLE = {
    "entry": 'color="#5b8fd1"',
    "answer": 'color="#54656f"',
    "invalid": 'style=dashed color="#d93025" fontcolor="#d93025"',
    "switch": 'style=dashed color="#c58a00"',
    "end": 'color="#8696a0"',
}


def to_dot(graph: FlowGraph, highlight: str | None = None) -> str:
    """DOT source; each node's SVG ``id`` is its :attr:`Node.id`, the highlighted one has class ``current``."""
    out = [
        f"digraph {_dot_str(graph.template)} {{",
        f'  graph [rankdir=TB nodesep=0.35 ranksep=0.45 fontname="{FONT}" bgcolor="transparent"]',
        f'  node [fontname="{FONT}" fontsize=12 margin="0.12,0.06"]',
        f'  edge [fontname="{FONT}" fontsize=10 arrowsize=0.7]',
    ]
    current = step_id(highlight) if highlight else None
    for n in graph.nodes:
        style = NODE_STYLE[n.kind]
        extra = f' class="{n.kind}"'
        if n.id == current:
            style += f' fillcolor="{HIGHLIGHT_FILL}" color="{HIGHLIGHT_STROKE}" penwidth=3'
            extra = f' class="{n.kind} current"'
        label = _html_label(n) if n.kind != "end" else '"end"'
        out.append(f"  {_dot_str(n.id)} [id={_dot_str(n.id)}{extra} label={label} {style}]")
    for e in graph.edges:
        label = f" label={_dot_str(e.label)}" if e.label else ""
        out.append(f"  {_dot_str(e.source)} -> {_dot_str(e.target)} [{EDGE_STYLE[e.kind]}{label}]")
    out.append("}")
    return "\n".join(out) + "\n"


@lru_cache(maxsize=64)
def _run_dot(source: str, fmt: Format) -> bytes:
    # Cached: the simulator asks for the same diagram on every step change.
    binary = shutil.which("dot")
    if binary is None:
        raise GraphvizMissing(
            "Graphviz's `dot` is not installed, so no svg or png; use --format html (drawn in any browser,"
            " nothing to install), or apt-get install graphviz"
        )
    done = subprocess.run([binary, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=20, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout


def render(graph: FlowGraph, fmt: Format, highlight: str | None = None) -> bytes:
    """SVG or PNG bytes drawn by ``dot``; raises GraphvizMissing when it is not installed."""
    return _run_dot(to_dot(graph, highlight), fmt)


# --- HTML ------------------------------------------------------------------------


def _inline(text: str) -> str:
    # Inside <script> only "</script" ends the element early; "<\/" means the same in JS.
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def to_html(graph: FlowGraph, renderer_js: str, highlight: str | None = None) -> str:
    """One HTML file that draws the diagram offline: ``renderer_js`` (the vendored
    ``@viz-js/viz`` browser build) and the DOT source, both inline."""
    title = html.escape(graph.template)
    dot = json.dumps(to_dot(graph, highlight)).replace("<", "\\u003c")
    step = f" · current step: {html.escape(highlight)}" if highlight else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}: parley flow</title>
<style>
  body {{ margin: 16px; font-family: {PAGE_FONTS}; color: #111b21; background: #fff; }}
  h1 {{ font-size: 18px; font-weight: 600; }}
  #diagram svg text {{ font-family: {PAGE_FONTS}; }}
  #diagram svg {{ max-width: 100%; height: auto; }}
</style>
<script>{_inline(renderer_js)}</script>
</head>
<body>
<h1>{title}<small>{step}</small></h1>
<div id="diagram">Drawing…</div>
<script type="application/json" id="dot">{dot}</script>
<script>
  Viz.instance().then((viz) => {{
    const dot = JSON.parse(document.getElementById("dot").textContent);
    document.getElementById("diagram").replaceChildren(viz.renderSVGElement(dot));
  }});
</script>
</body>
</html>
"""
