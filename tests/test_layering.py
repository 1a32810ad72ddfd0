"""The import structure of engine/: built from the modules' own import statements (those inside functions
too), it must have no cycle except the two the design has, each commented where it is made:

    engine.tensor <-> engine.ops           Tensor's operators call ops; ops build Tensors
    engine.models <-> engine.functional    Functional is a Model; Model(inputs, outputs) makes a Functional
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine")
ALLOWED_CYCLES = [{"engine.tensor", "engine.ops"}, {"engine.models", "engine.functional"}]


def _modules():
    """{dotted name: path} of every Python module in engine/."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph():
    """{module: set of engine modules it imports}. `from package import name` points at package.name when
    that is a module, else at the package itself (its __init__)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    edges.add(target if target in modules else source)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports_it_should():
    graph = import_graph()
    assert "engine.ops" in graph["engine.tensor"] and "engine.tensor" in graph["engine.ops"]
    assert "engine.layers.symbolic" in graph["engine.layers.base"]
    assert "engine.serialization" in graph["engine.saving"]
    assert "engine.functional" in graph["engine.models"]             # the lazy import in Model.__new__


def test_no_import_cycle_beyond_the_two_the_design_has():
    found = cycles(import_graph())
    unexpected = [sorted(c) for c in found if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


@pytest.mark.parametrize("module", ["engine.saving", "engine.serialization", "engine.layers.symbolic"])
def test_saving_and_the_registry_import_no_layer_or_model_class(module):
    below = import_graph()[module]
    assert not {m for m in below if m.startswith("engine.layers.") and m != "engine.layers.symbolic"
                or m in ("engine.layers", "engine.models", "engine.functional")}, below


def test_no_test_module_imports_another_and_bench_edits_no_sys_path():
    """Shared test helpers live in tests/checks.py (and fixtures in conftest.py); bench/ finds its _util without
    sys.path edits (a script's folder, and pytest's rootdir, are on the path already)."""
    tests = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(tests)):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(tests, name)).read())
            imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
            imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
            assert not {m for m in imported if m.startswith("test_")}, name
    bench = os.path.join(os.path.dirname(tests), "bench")
    for name in sorted(os.listdir(bench)):
        if name.endswith(".py"):
            assert "sys.path" not in open(os.path.join(bench, name)).read(), name
