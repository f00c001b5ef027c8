"""The `no_cycles` import-linter contract (tests/import_contracts.py; issue 12 §2) on small graphs: it finds a cycle
however long and whatever package it passes through, honours an ignored import, and fails when an ignored import no
longer exists."""

from __future__ import annotations

import grimp
import pytest
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain.helpers import MissingImport

from tests.import_contracts import NoCyclesContract, strongly_connected


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="import")
    return graph


def _contract(**options: object) -> NoCyclesContract:
    return NoCyclesContract(name="no cycles", session_options={}, contract_options={"containers": ["dicom"], **options})


def test_a_long_cycle_through_another_package_is_found() -> None:
    graph = _graph(
        ("dicom.handlers", "engine.imaging.receive"),
        ("engine.imaging.receive", "engine.cases.services"),
        ("engine.cases.services", "dicom.qr"),  # never allowed (engine -> dicom), but the contract must see it
        ("dicom.qr", "dicom.handlers"),
        ("dicom.scu", "dicom.uids"),
    )
    check = _contract().check(graph, verbose=False)
    assert not check.kept
    (cycle,) = check.metadata["cycles"]
    assert cycle["modules"] == ["dicom.handlers", "dicom.qr", "engine.cases.services", "engine.imaging.receive"]
    assert cycle["example"][0] == cycle["example"][-1] == "dicom.handlers"
    assert len(cycle["example"]) == 5


def test_a_cycle_outside_the_containers_is_not_this_contracts_business() -> None:
    graph = _graph(("api.a", "api.b"), ("api.b", "api.a"), ("dicom.scp", "api.a"))
    assert _contract().check(graph, verbose=False).kept


def test_the_ignored_import_breaks_only_its_own_cycle() -> None:
    graph = _graph(
        ("dicom.scp", "dicom.supervisor"),
        ("dicom.supervisor", "dicom.scp"),
        ("dicom.handlers", "dicom.worklist"),
        ("dicom.worklist", "dicom.handlers"),
    )
    check = _contract(ignore_imports=["dicom.supervisor -> dicom.scp"]).check(graph, verbose=False)
    assert [c["modules"] for c in check.metadata["cycles"]] == [["dicom.handlers", "dicom.worklist"]]
    assert check.ignored_import_count == 1


def test_an_exception_that_no_longer_exists_is_an_error() -> None:
    graph = _graph(("dicom.scp", "dicom.supervisor"))
    contract = _contract(ignore_imports=["dicom.supervisor -> dicom.scp"])
    assert contract.unmatched_ignore_imports_alerting == AlertLevel.ERROR
    with pytest.raises(MissingImport):
        contract.check(graph, verbose=False)


def test_strongly_connected_components_of_a_chain_and_a_loop() -> None:
    graph = _graph(("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"))
    components = sorted(sorted(c) for c in strongly_connected(graph))
    assert components == [["a", "b", "c"], ["d"]]
