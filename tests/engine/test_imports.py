"""The engine's modules import each other without a cycle, in PyTorch's layers.

Functions at the bottom (``tensor``, ``functional`` with ``conv`` and
``normalization``, ``init``), the ``Module`` classes of ``nn`` on top of them,
``optim`` beside, and ``lr_scheduler`` on top of ``optim``. The graph is read
from the source with :mod:`ast`, every ``import`` statement anywhere in a file
(one inside a function hides a cycle from the interpreter, it does not remove
it), so a cycle fails here even when a lazy import keeps it from crashing.
"""
import ast
from pathlib import Path

import scratch.engine

PACKAGE = "scratch.engine"
ENGINE = Path(scratch.engine.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE).with_suffix("").parts
    return ".".join((PACKAGE, *parts[:-1])) if parts[-1] == "__init__" else ".".join((PACKAGE, *parts))


MODULES = {_module_name(path): path for path in sorted(ENGINE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, module: str | None, level: int) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    if level == 0:
        return module
    base = importer.split(".")
    base = base[:len(base) - level + (1 if _is_package(importer) else 0)]
    return ".".join(base + ([module] if module else []))


def _targets(base: str, names) -> set:
    """The engine modules that ``from base import names`` runs: ``base`` itself, and each of
    ``names`` that is a submodule of it (``from . import nn``)."""
    found = {f"{base}.{alias.name}" for alias in names if f"{base}.{alias.name}" in MODULES}
    # A package counts only for the names that are not its submodules (``from . import Tensor``
    # would need the engine's __init__; ``from . import init`` needs init alone).
    if base in MODULES and (not _is_package(base) or len(found) < len(names)):
        found.add(base)
    return found


def engine_imports(name: str) -> tuple[set, list]:
    """(the engine modules that module ``name`` imports, its dynamic imports as source lines)."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found, dynamic = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            found |= _targets(_resolve(name, node.module, node.level), node.names)
        elif isinstance(node, ast.Call):  # importlib.import_module(...), __import__(...)
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                dynamic.append(f"{MODULES[name].name}:{node.lineno}: {ast.unparse(node)}")
    found.discard(name)
    # Importing a submodule runs its package's __init__ first; that edge is Python's, not the
    # module's (every package has it), so only what the module asks for by name counts.
    return found, dynamic


GRAPH = {name: engine_imports(name)[0] for name in MODULES}


def find_cycle(graph: dict) -> list | None:
    """One cycle of ``graph`` as a list of nodes, first == last, or None: depth-first search."""
    state, path = {}, []  # state: 1 = on the current path, 2 = done

    def visit(node):
        state[node] = 1
        path.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return path[path.index(succ):] + [succ]
            if succ not in state:
                cycle = visit(succ)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def reachable(graph: dict, start: str) -> set:
    seen, todo = set(), [start]
    while todo:
        for succ in graph.get(todo.pop(), ()):
            if succ not in seen:
                seen.add(succ)
                todo.append(succ)
    return seen


def short(names) -> str:
    return " -> ".join(n.removeprefix(PACKAGE + ".") for n in names)


def test_the_parser_sees_the_imports():
    # A guard for the tests below: a graph without edges would be acyclic too.
    assert {"scratch.engine.tensor", "scratch.engine.functional"} <= GRAPH["scratch.engine.nn"]
    assert "scratch.engine.optim" in GRAPH["scratch.engine.lr_scheduler"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_engine_import_graph_is_acyclic():
    cycle = find_cycle(GRAPH)
    assert cycle is None, f"the engine's modules import each other in a circle: {short(cycle)}"


def test_functions_do_not_import_the_module_layer():
    """nn imports functional, never the reverse: the functions work without any Module."""
    for name in ("tensor", "functional", "conv", "normalization", "init", "optim"):
        above = reachable(GRAPH, f"{PACKAGE}.{name}") & {f"{PACKAGE}.nn", f"{PACKAGE}.lr_scheduler"}
        assert not above, f"{name} imports {short(sorted(above))}, a layer above it"
    assert f"{PACKAGE}.functional" in GRAPH[f"{PACKAGE}.nn"]


def test_no_dynamic_imports():
    # importlib.import_module (a lazy __getattr__, say) would hide an edge from the graph above.
    dynamic = [line for name in MODULES for line in engine_imports(name)[1]]
    assert not dynamic, "dynamic imports in the engine: " + "; ".join(dynamic)


def test_public_names_still_there():
    """The names the chapters, tests and bench/ use, now defined without a cycle."""
    from scratch.engine import functional as F, lr_scheduler, nn, optim
    from scratch.engine.optim import lr_scheduler as from_optim

    assert from_optim is lr_scheduler and optim.lr_scheduler is lr_scheduler  # torch.optim.lr_scheduler's place
    assert issubclass(optim.lr_scheduler.StepLR, optim.lr_scheduler.LRScheduler)
    assert nn.functional is F and nn.init is scratch.engine.init
    for name in ("Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm"):
        assert issubclass(getattr(nn, name), nn.Module), name
    for name in ("conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "layer_norm", "group_norm"):
        assert callable(getattr(F, name)), name
