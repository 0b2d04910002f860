"""The import graph of sparse_keras: data flows one way, from pure math up to the public names.

Every module of the package is parsed with ``ast`` (nothing is imported, so the test needs no backend),
each import of another sparse_keras module becomes an edge, and each module gets the layer of the
subpackage (or top-level module) it belongs to. A module may import its own layer or lower ones; an
upward edge means a lower part of the library depends on a higher one, which is how cycles start.
"""

import ast
import os
import pathlib

import pytest

PACKAGE = "sparse_keras"
ROOT = pathlib.Path(__file__).resolve().parent.parent / PACKAGE

# Lowest first. Within one entry, modules may import each other (but not in a cycle).
LAYERS = (
    ("utils",),  # atomic files, argument checks, tables, timing: no sparsity knowledge
    ("ops",),  # group math (keras.ops and numpy)
    ("initializers", "regularizers"),
    ("inspection",),  # reading a model: kernels, channel graph, learned architecture
    ("layers",),
    ("shrinking",),  # rebuilding smaller layers; its handlers define how channels couple
    ("sparsity",),  # attach, ADMM, thresholds, masks, coupled groups, LRSD pruning and conversion
    ("models",),
    ("reports",),
    ("data",),
    # The curated public names (``sk.admm``, ``sk.prune``, ...) and the package itself: they import the
    # implementation, never the other way round.
    ("__init__", "admm", "analysis", "benchmark", "callbacks", "convert", "lrsd", "prune", "structure", "testing"),
    ("training",),  # the experiment runner uses the public API like any user
)
# Code that uses the library and must never be used by it.
OUTSIDE = ("train", "configs", "benchmarks", "tests")


def module_name(path, root=ROOT, package=PACKAGE):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def parse_imports(root=ROOT, package=PACKAGE):
    """``{module: {imported module names}}`` for every ``.py`` file under ``root`` (all imports, also those
    inside functions). ``from a import b`` counts as importing ``a.b`` when that is a module of ``root``."""
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    graph = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    imported.add(full if full in files else base)
        graph[name] = imported
    return graph


def unit_of(module, package=PACKAGE):
    """The subpackage or top-level module that ``module`` belongs to (``"__init__"`` for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_index(layers=LAYERS):
    return {unit: i for i, units in enumerate(layers) for unit in units}


def upward_edges(graph, layers=LAYERS, package=PACKAGE):
    """``(importer, imported)`` pairs where a module imports one of a higher layer."""
    index = layer_index(layers)
    found = []
    for module, imported in graph.items():
        for target in imported:
            if target.split(".")[0] != package:
                continue
            if index[unit_of(target)] > index[unit_of(module)]:
                found.append((module, target))
    return sorted(found)


def cycles(graph, package=PACKAGE):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    nodes = sorted(graph)
    edges = {m: sorted(t for t in graph[m] if t in graph and t != m) for m in nodes}
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(found)


def outside_imports(graph, outside=OUTSIDE):
    return sorted((m, t) for m, imported in graph.items() for t in imported if t.split(".")[0] in outside)


# ----------------------------------------------------------------------------------------- the real package
def test_every_part_of_the_package_has_a_layer():
    units = {unit_of(m) for m in parse_imports()}
    assert units <= set(layer_index()), f"give these a layer in LAYERS: {sorted(units - set(layer_index()))}"


def test_no_module_imports_a_higher_layer():
    assert upward_edges(parse_imports()) == []


def test_the_import_graph_has_no_cycle():
    assert cycles(parse_imports()) == []


def test_the_library_never_imports_the_binaries_configs_benchmarks_or_tests():
    assert outside_imports(parse_imports()) == []


def test_modules_stay_small():
    """A module holds one idea: none is over 400 lines."""
    long = {m: n for m, p in ((module_name(p), p) for p in ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


# ---------------------------------------------------------------------- the checks themselves, planted errors
SYNTHETIC = {
    "sparse_keras": {"sparse_keras.admm"},
    "sparse_keras.admm": {"sparse_keras.sparsity.admm"},
    "sparse_keras.sparsity.admm": {"sparse_keras.ops.groups", "sparse_keras.inspection.kernels"},
    "sparse_keras.inspection.kernels": {"keras"},
    "sparse_keras.ops.groups": {"numpy"},
}


def test_a_clean_synthetic_graph_passes():
    assert upward_edges(SYNTHETIC) == [] and cycles(SYNTHETIC) == [] and outside_imports(SYNTHETIC) == []


def test_a_planted_upward_import_is_found():
    graph = {**SYNTHETIC, "sparse_keras.ops.groups": {"numpy", "sparse_keras.reports.plots"}}
    assert upward_edges(graph) == [("sparse_keras.ops.groups", "sparse_keras.reports.plots")]


def test_a_planted_import_of_a_public_namespace_from_inside_is_found():
    graph = {**SYNTHETIC, "sparse_keras.inspection.kernels": {"sparse_keras.admm"}}
    assert upward_edges(graph) == [("sparse_keras.inspection.kernels", "sparse_keras.admm")]


def test_a_planted_cycle_is_found():
    graph = {**SYNTHETIC, "sparse_keras.ops.groups": {"sparse_keras.ops.proximal"},
             "sparse_keras.ops.proximal": {"sparse_keras.ops.groups"}}
    assert cycles(graph) == [["sparse_keras.ops.groups", "sparse_keras.ops.proximal"]]


def test_a_planted_import_of_a_binary_is_found():
    graph = {**SYNTHETIC, "sparse_keras.sparsity.admm": {"train.train"}}
    assert outside_imports(graph) == [("sparse_keras.sparsity.admm", "train.train")]


def test_imports_are_read_from_source_also_inside_functions(tmp_path):
    """A planted package on disk: a lazy upward import inside a function is an edge like any other."""
    root = tmp_path / "sparse_keras"
    for folder in ("ops", "reports"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("from sparse_keras import ops\n")
    (root / "ops" / "groups.py").write_text("def f():\n    from sparse_keras.reports import plots\n    return plots\n")
    (root / "reports" / "plots.py").write_text("from . import figures\n")
    (root / "reports" / "figures.py").write_text("import os\n")
    graph = parse_imports(root)
    assert graph["sparse_keras.reports.plots"] == {"sparse_keras.reports.figures"}
    assert upward_edges(graph) == [("sparse_keras.ops.groups", "sparse_keras.reports.plots")]


@pytest.mark.parametrize("module", ["sparse_keras.admm", "sparse_keras.sparsity.admm", "sparse_keras"])
def test_module_names_follow_the_file_layout(module):
    path = ROOT.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert module_name(path) == module and os.path.exists(path)
