"""The layout docs/architecture.md describes, checked on the source (AST, no imports run):
no import cycle among odrun/provision/odcore modules (imports inside functions count: deferring
our own modules is what hid the cycles of issue 21), verbs that never branch on a task name,
nothing importing a verb, functions of at most 80 lines outside tests/ and bench/, ruff's C901
(pyproject.toml: max-complexity 15), and only the entry point and shared layers at odrun/'s root."""
import ast
import os
import subprocess

from conftest import ROOT, bin_path, require

PACKAGES = ("odrun", "provision", "odcore")
MAX_LINES = 80
# odrun/'s root: the entry point and these layers (docs/architecture.md); every task lives in tasks/
ROOT_FILES = {"__init__.py", "__main__.py", "cli.py"}
ROOT_DIRS = {"verbs", "tasks", "convert", "serve", "runtimes", "workdir", "ui", "data"}


def modules(root):
    """{dotted module name: path} of every .py file in PACKAGES under `root`."""
    found = {}
    for pkg in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(str(root), pkg)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    name = os.path.relpath(path, str(root))[:-3].replace(os.sep, ".")
                    found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def import_graph(root):
    """{module: {modules it imports}} with every import statement, at any depth, counted.
    `from pkg import name` is an edge to pkg.name when that is a module, else to pkg."""
    mods = modules(root)

    def known(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges.update(known(a.name) for a in node.names if a.name.split(".")[0] in PACKAGES)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in PACKAGES:
                for a in node.names:
                    full = node.module + "." + a.name
                    edges.add(full if full in mods else known(node.module))
        graph[name] = {e for e in edges if e and e != name}
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    graph = import_graph(ROOT)
    found = cycles(graph)
    assert not found, "import cycles (break them at their cause, see docs/architecture.md):\n" + "\n".join(
        "  " + " <-> ".join(c) + "\n    " + "\n    ".join(
            "{} imports {}".format(m, ", ".join(sorted(graph[m] & set(c)))) for m in c) for c in found)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    """The check above would catch a cycle made by a function-level import (a planted one)."""
    pkg = tmp_path / "odrun"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from odrun import b\n")
    (pkg / "b.py").write_text("def f():\n    from odrun.a import x\n    return x\n")
    (pkg / "c.py").write_text("import odrun.a\n")
    assert cycles(import_graph(tmp_path)) == [["odrun.a", "odrun.b"]]


def _verb_modules():
    folder = ROOT / "odrun" / "verbs"
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


def test_verbs_never_compare_task_names():
    """A verb looks its task up in odrun.tasks.TASKS; `if task == "classify"` belongs to no verb."""
    from odrun.tasks import TASKS
    names = set(TASKS)
    found = []
    for path in _verb_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            for side in [node.left] + list(node.comparators):
                consts = [side] if isinstance(side, ast.Constant) else \
                    list(side.elts) if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else []
                if any(isinstance(c, ast.Constant) and c.value in names for c in consts):
                    found.append("{}:{}".format(path.relative_to(ROOT), node.lineno))
    assert not found, "verbs comparing task names: " + ", ".join(found)


def test_nothing_imports_a_verb():
    """Verbs are leaves: odrun.cli names them as strings; no module (verbs included) imports one."""
    graph = import_graph(ROOT)
    found = sorted("{} imports {}".format(m, t) for m, ts in graph.items() for t in ts
                   if t.startswith("odrun.verbs.") and t != "odrun.verbs")
    assert not found, "\n".join(found)


def test_functions_are_at_most_80_lines():
    long = []
    for pkg in PACKAGES + ("setup.py",):
        paths = [ROOT / pkg] if pkg.endswith(".py") else sorted((ROOT / pkg).rglob("*.py"))
        for path in paths:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_LINES:
                        long.append("{}:{} {} ({} lines)".format(path.relative_to(ROOT), node.lineno, node.name,
                                                                 lines))
    assert not long, "split these along their steps:\n" + "\n".join(long)


def test_ruff_complexity_is_configured_and_clean():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"C901"' in text and "max-complexity = 15" in text
    ruff = bin_path("ruff")
    require(ruff, "ruff not installed (pip install -e '.[dev]')")
    proc = subprocess.run([ruff, "check", "--no-cache", "--select", "C901", "--output-format", "concise",
                           "odrun", "odcore", "provision", "tests", "bench"], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_the_entry_point_and_shared_layers_at_the_root_of_odrun():
    here = {p.name for p in (ROOT / "odrun").iterdir() if p.name != "__pycache__"}
    files = {n for n in here if (ROOT / "odrun" / n).is_file()}
    assert files <= ROOT_FILES, "modules at odrun/'s root: " + ", ".join(sorted(files - ROOT_FILES))
    assert here - files <= ROOT_DIRS, "packages at odrun/'s root: " + ", ".join(sorted(here - files - ROOT_DIRS))


def test_no_bench_script_shadows_a_standard_module():
    """`python bench/X.py` puts bench/ first on sys.path: a bench/inspect.py hid the standard
    `inspect` from numpy and attrs (every benchmark importing them crashed)."""
    import sys
    bench = os.path.join(ROOT, "bench")
    shadowing = sorted(n for n in os.listdir(bench) if n.endswith(".py") and n[:-3] in sys.stdlib_module_names)
    assert not shadowing, shadowing
