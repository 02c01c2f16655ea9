"""The layers import one way: no import cycles (module level or inside functions), the engine never
imports the ops, and the launcher needs nothing of distgrad but itself and the leaf ``envvars``."""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER_MAY_IMPORT = ("distgrad.launch", "distgrad.envvars")


def _source_files():
    """{module name: path} for distgrad/ and launch/ (which installs as distgrad.launch)."""
    found = {}
    for top, package in (("distgrad", "distgrad"), ("launch", "distgrad.launch")):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            rel = os.path.relpath(folder, os.path.join(ROOT, top))
            prefix = package if rel == "." else package + "." + rel.replace(os.sep, ".")
            for f in files:
                if f.endswith(".py"):
                    name = prefix if f == "__init__.py" else f"{prefix}.{f[:-3]}"
                    found[name] = os.path.join(folder, f)
    return found


MODULES = _source_files()


def _is_type_checking_block(node) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree, module: str):
    """Every distgrad module named by an import statement anywhere in the file, but under TYPE_CHECKING."""
    is_package = MODULES[module].endswith("__init__.py")
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _dependencies(module: str) -> set:
    """The distgrad modules that importing ``module`` runs: what it imports, and the packages
    around those (a package's __init__ runs before its submodules), but not its own packages."""
    with open(MODULES[module]) as f:
        tree = ast.parse(f.read())
    deps = set()
    for name in _imported_names(tree, module):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        while name:
            if not (module + ".").startswith(name + ".") and name != "distgrad":
                deps.add(name)
            name = name.rpartition(".")[0]
    deps.discard(module)
    return deps


GRAPH = {m: _dependencies(m) for m in MODULES}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back_through_others():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_autograd_never_imports_the_ops():
    offenders = {m: sorted(d for d in deps if d.startswith("distgrad.ops"))
                 for m, deps in GRAPH.items() if m.startswith("distgrad.autograd")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_launcher_imports_only_itself_and_the_leaf_constants():
    offenders = {m: sorted(d for d in deps if not d.startswith(LAUNCHER_MAY_IMPORT))
                 for m, deps in GRAPH.items() if m.startswith("distgrad.launch")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_envvars_leaf_imports_nothing_of_distgrad():
    assert GRAPH["distgrad.envvars"] == set()


def test_importing_the_launcher_loads_no_numpy_and_few_distgrad_modules():
    code = ("import sys, distgrad.launch.main; "
            "print(sum(m.startswith('distgrad') for m in sys.modules), 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) <= 10 and out[1] == "False"


@pytest.mark.parametrize("entry", ["distgrad.nn", "distgrad.optim", "distgrad.data", "distgrad.distributed",
                                   "distgrad.autograd", "distgrad.ops", "distgrad.tensor"])
def test_each_entry_point_imports_alone_and_gives_complete_tensors(entry):
    code = (f"import {entry}; import distgrad as dg; from distgrad.tensor import Tensor; "
            "t = dg.tensor([1.0, 2.0], requires_grad=True); (t * 2).sum().backward(); "
            "assert t.grad.tolist() == [2.0, 2.0] and callable(dg.tensor) and hasattr(Tensor, 'backward')")
    subprocess.run([sys.executable, "-c", code], check=True)
