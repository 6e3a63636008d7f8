"""The import layers hold (import-linter's contracts in .importlinter), no module imports itself back through a cycle,
no private name crosses a package line, and no stage branches on a family's name."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunesmith"


def test_the_import_layer_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(SRC.parents[1] / ".importlinter")], capture_output=True,
                          text=True, cwd=SRC.parents[1], timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 kept, 0 broken" in proc.stdout


def test_no_import_cycles_between_modules():
    import grimp  # installed with import-linter (the dev extra)
    graph = grimp.build_graph("tunesmith", include_external_packages=False, exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    cycles = _strongly_connected(edges)
    assert not cycles, f"import cycles: {cycles}"


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other (size > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_across_packages():
    crossing = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tunesmith"):
                same = node.module == package or node.module.startswith(package + ".")
                crossing += [f"{path.relative_to(SRC)}: {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__") and not same]
    assert not crossing, crossing


# The stages call the family protocol; only the families, the config and the registry name a family. One deliberate
# exception: the single-label row check's hint names the config key that turns label lists on.
FAMILY_BRANCH = re.compile(r"TaskKind\.|task ==|\.task\.value|multi_label")
ALLOWED = {"data/schema.py: set data.multi_label: true"}


def test_no_stage_branches_on_a_family():
    hits = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(("families/", "config/", "registry/")):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if FAMILY_BRANCH.search(line) and not any(rel == a.split(": ")[0] and a.split(": ")[1] in line
                                                      for a in ALLOWED):
                hits.append(f"{rel}: {line.strip()}")
    assert not hits, hits
