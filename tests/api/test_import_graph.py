"""The package's import graph, read from the source: three rooms, kernels <- ops <- API, every
import pointing down, the API reaching the kernels only through ops, and no import cycle
(imports inside functions included)."""
import ast
import os

import fastcnn

PACKAGE = os.path.dirname(os.path.abspath(fastcnn.__file__))


def _modules():
    """{dotted name: path} of every Python module of the package."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = "fastcnn." + os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def _imports(name, path, modules):
    """The package modules that ``name`` imports. ``from . import x`` of a submodule x counts as
    an import of x alone: the package itself is already being imported."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            target = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
            target = ".".join(filter(None, [target, node.module]))
            subs = [f"{target}.{a.name}" for a in node.names]
            found.update(subs if all(s in modules for s in subs) else [target, *subs])
    return {m for m in found if m in modules and m != name}


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _room(module):
    if module.startswith(("fastcnn._ext", "fastcnn._reference")):
        return 0
    return 1 if module.startswith("fastcnn._ops") else 2


def test_every_import_points_down_a_room():
    graph = _graph()
    upward = sorted((a, b) for a, deps in graph.items() for b in deps if _room(b) > _room(a))
    assert upward == []


def test_api_reaches_the_kernels_only_through_ops():
    graph = _graph()
    skipped = sorted((a, b) for a, deps in graph.items() for b in deps
                     if _room(a) == 2 and _room(b) == 0)
    assert skipped == []


def test_no_import_cycle():
    graph, done, cycles = _graph(), set(), []

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []
