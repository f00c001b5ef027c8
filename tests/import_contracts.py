"""import-linter contract type `no_cycles` (pyproject.toml `[tool.importlinter] contract_types`; issue 12 §2).

import-linter 2.16's built-in types cannot say "no module of these packages is on an import cycle, at any depth":
`acyclic_siblings` looks only at imports between the children of one package (a cycle that leaves the package
and comes back through another one is not seen), `independence` and `layers` need the modules listed up front.
This contract takes the whole import graph grimp builds — function-local imports included, so a cycle dodged with
an import inside a function still counts (STYLE.md §2) — finds its strongly connected components and fails for
every component of two or more modules that holds a module of `containers`. Allowed exceptions are listed as
`ignore_imports` (each one documented where it is written); an ignored import that no longer exists is an error,
so the exception list cannot outlive the code.
"""

from __future__ import annotations

from typing import Any

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def strongly_connected(graph: ImportGraph) -> list[set[str]]:
    """Tarjan's strongly connected components of the module graph (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.find_modules_directly_imported_by(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out


def _inside(module: str, containers: list[str]) -> bool:
    return any(module == c or module.startswith(c + ".") for c in containers)


def _example_cycle(graph: ImportGraph, component: set[str], start: str) -> list[str]:
    """One concrete cycle through `start` within its component: start -> ... -> start."""
    best: list[str] | None = None
    for nxt in sorted(graph.find_modules_directly_imported_by(start) & component):
        chain = graph.find_shortest_chain(importer=nxt, imported=start)
        if chain is not None and (best is None or len(chain) + 1 < len(best)):
            best = [start, *chain]
    return best or [start, start]


class NoCyclesContract(Contract):
    """No module of `containers` is on an import cycle, however long."""

    type_name = "no_cycles"

    containers = fields.ListField(subfield=fields.ModuleField())
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(AlertLevel, default=AlertLevel.ERROR)
    broken_contract_guidance = fields.TextField(required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        containers = [m.name for m in self.containers]  # type: ignore[attr-defined]
        cycles: list[dict[str, Any]] = []
        for component in strongly_connected(graph):
            inside = sorted(m for m in component if _inside(m, containers))
            if len(component) < 2 or not inside:
                continue
            cycles.append({"modules": sorted(component), "example": _example_cycle(graph, component, inside[0])})
        output.verbose_print(verbose, f"{len(cycles)} import cycle(s) through {', '.join(containers)}")
        return ContractCheck(
            kept=not cycles,
            metadata={"cycles": cycles},
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(f"Import cycle among {', '.join(cycle['modules'])}:")
            output.new_line()
            output.indent_cursor()
            output.print_error(" -> ".join(cycle["example"]), bold=False)
            output.new_line()
        if self.broken_contract_guidance:
            output.print(str(self.broken_contract_guidance))
