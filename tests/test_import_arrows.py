"""Stages import forward only (docs/DESIGN.md §2): data → teachers → training → export → runtime →
eval/serve → reports → recipe (the paper recipe: it runs the CLI as subprocesses). A stage may import
the shared modules (spec/, models/ and the top-level kdasr/*.py utilities: text, audio, errors,
io_utils, ...) and any earlier stage, never a later one; the shared
modules import no stage; no stage imports the front ends (kdasr/cli/, the package root, which
re-exports the runtime's API). Every import statement counts, also the lazy ones inside
functions, read from the source with ast (nothing is imported). No two modules import each other,
directly or round a loop (a sideways loop inside one stage counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kdasr"
SHARED = 0
# kdasr/spec/ (the typed contracts) is shared: not a stage
STAGES = {"data": 1, "teachers": 2, "training": 3, "export": 4, "runtime": 5, "eval": 6, "serve": 6, "reports": 7,
          "recipe": 8}
FRONT = 9  # kdasr/cli/, kdasr/__init__.py, kdasr/__main__.py: may import anything

# (importer, imported): known exceptions, each with its reason. Empty, and meant to stay so.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every kdasr module `path` imports (relative imports resolved; `from X import y` counts X)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
    return {m for m in found if m == "kdasr" or m.startswith("kdasr.")}


def rank(module: str) -> tuple[int, str]:
    """(stage rank, stage name) of a kdasr module."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("cli", "__main__"):
        return FRONT, "front end"
    top = parts[1]
    if top in STAGES:
        return STAGES[top], top
    return SHARED, "shared"


def violations() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = module_name(path)
        r_src, stage_src = rank(src)
        if r_src == FRONT:
            continue
        for dst in sorted(imports(path)):
            r_dst, stage_dst = rank(dst)
            same_stage = stage_src == stage_dst
            if same_stage or r_dst < r_src or (r_src == r_dst == SHARED):
                continue
            out.append((src, dst, f"{stage_src} imports {stage_dst}"))
    return out


def test_stages_import_forward_only():
    found = violations()
    unexpected = [f"{a} -> {b} ({why})" for a, b, why in found if (a, b) not in EXCEPTIONS]
    assert not unexpected, "backward imports:\n" + "\n".join(unexpected)


def test_the_exception_list_has_no_stale_entries():
    found = {(a, b) for a, b, _ in violations()}
    stale = [f"{a} -> {b}" for a, b in EXCEPTIONS if (a, b) not in found]
    assert not stale, "no longer needed (remove from EXCEPTIONS): " + ", ".join(stale)


def import_graph() -> dict[str, set[str]]:
    """module -> the kdasr modules it imports (`from kdasr.x import y` counts kdasr.x.y when y is a module)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = imports(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # `from . import x` / `from kdasr.y import x` naming a submodule
            if isinstance(node, ast.ImportFrom):
                for target in found:
                    found = found | {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """Package __init__ re-exports (kdasr.runtime -> transcriber) are edges like any other; a loop
    means two modules that should be one, or a third that both should import."""
    found = cycles(import_graph())
    assert not found, "import loops:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The parser resolves `from ..x import y` inside a function body (what the rules hinge on)."""
    path = PACKAGE / "training" / "recipe.py"
    found = imports(path)
    assert "kdasr.teachers.storage" in found  # a lazy import inside check_soft_labels
    assert "kdasr.models.student_io" in found and "kdasr.training.checkpoint" in found
    assert rank("kdasr.export.pipeline") > rank("kdasr.training.recipe") > rank("kdasr.teachers.bench")
    assert rank("kdasr.spec.modelspec")[0] == rank("kdasr.spec.graph_spec")[0] == SHARED
    assert rank("kdasr.models.student")[0] == SHARED
    assert rank("kdasr.runtime.jobs.inputs") == rank("kdasr.runtime.prepare")
    assert rank("kdasr.reports.bench") > rank("kdasr.eval.wer") > rank("kdasr.runtime.search.beam")
