"""The import graph stays layered: no module imports, even inside a function, one that
imports it back, and the lower layers never reach the ones above them.

Built by grimp from the source (every ``import``, at module level or in a function), so a
new circle fails here rather than as an ImportError on some rarely taken path.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGE = "secretd"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import circles: every strongly connected set of more than one module (Tarjan,
    without recursion)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def test_no_import_circles(graph: grimp.ImportGraph) -> None:
    assert cycles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert cycles(graph) == [["a.b", "a.c"]]


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("secretd.backends", "secretd.runtime"),  # providers fetch values, nothing more
        ("secretd.backends", "secretd.mount"),
        ("secretd.runtime", "secretd.backends"),  # runtimes get values, never fetch them
        ("secretd.mount", "secretd.backends"),
        ("secretd.mount", "secretd.runtime"),
        ("secretd.policy", "secretd.runtime"),  # --user names resolve in secretd.users
        ("secretd.caller_run", "secretd.runtime"),
        ("secretd.protocol", "secretd.config"),  # frames on a socket, not where it is
    ],
)
def test_layer_does_not_reach(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    chains = graph.find_shortest_chains(importer=importer, imported=imported, as_packages=True)
    assert chains == set()


def test_only_the_command_line_imports_it(graph: grimp.ImportGraph) -> None:
    """The library below ``secretd.cli`` never imports click commands (``secretd`` itself,
    whose script starts at ``secretd.thin``, and ``python -m secretd`` are the ways in)."""
    above = {PACKAGE, f"{PACKAGE}.__main__", f"{PACKAGE}.thin"}
    below = {m for m in graph.modules if m not in above and not m.startswith(f"{PACKAGE}.cli")}
    cli = f"{PACKAGE}.cli"
    reaching = {
        m for m in below if graph.find_shortest_chains(importer=m, imported=cli, as_packages=True)
    }
    assert reaching == set()
