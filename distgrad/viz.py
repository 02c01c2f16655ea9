"""``to_dot``: the backward graph of a tensor as Graphviz DOT (and SVG/PNG where ``dot`` is installed)."""
from __future__ import annotations

import shutil
import subprocess

from distgrad.autograd.node import AccumulateGrad


def _shape(t) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def to_dot(tensor, params: dict | None = None, show_saved: bool = True) -> str:
    """DOT text of ``tensor``'s backward graph: ops as boxes, leaves (named from ``params``) in blue,
    saved tensors in orange, the root in green."""
    names = {id(p): n for n, p in (params or {}).items()}
    lines = ["digraph backward {", '  node [shape=box, fontname="monospace", fontsize=10];', "  rankdir=BT;"]
    seen = set()
    root = f"t{id(tensor)}"
    lines.append(f'  {root} [label="output\\n{_shape(tensor)}", fillcolor="darkolivegreen1", style=filled];')
    if tensor.grad_fn is None:
        lines.append("}")
        return "\n".join(lines)
    lines.append(f"  n{id(tensor.grad_fn)} -> {root};")
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nid = f"n{id(node)}"
        if isinstance(node, AccumulateGrad):
            var = node.variable
            label = (names.get(id(var), "") + "\\n" + _shape(var)).strip("\\n")
            lines.append(f'  {nid} [label="{label}", fillcolor="lightblue", style=filled];')
            continue
        lines.append(f'  {nid} [label="{node.name}"];')
        saved = getattr(node, "_saved", None)
        if show_saved and saved:
            for i, s in enumerate(saved):
                if s is None:
                    continue
                sid = f"s{id(node)}_{i}"
                lines.append(f'  {sid} [label="saved {i}\\n{_shape(s)}", fillcolor="orange", style=filled];')
                lines.append(f"  {sid} -> {nid} [style=dashed];")
        for edge in node.next_functions:
            if edge is None:
                continue
            lines.append(f"  n{id(edge[0])} -> {nid};")
            stack.append(edge[0])
    lines.append("}")
    return "\n".join(lines)


def render(tensor, path: str, format: str = "svg", params: dict | None = None) -> str:
    """Writes the graph to ``path`` as SVG or PNG with Graphviz's ``dot``; returns the path."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("rendering needs Graphviz's 'dot' program (apt-get install graphviz); "
                           "to_dot() returns the DOT text without it")
    subprocess.run([dot, f"-T{format}", "-o", path], input=to_dot(tensor, params).encode(), check=True)
    return path
