"""Schemathesis over the OpenAPI document, as each kind of user (make test-long; REQ: DAT-01, WEB-05, AC-04).

For every operation of /api/openapi.json and each role below, about 20 generated requests (half that fit the
schema, half that break it) are sent by a logged-in user of that role (TOTP and CSRF included). The check: no
answer is a 5xx, and every answer conforms to the response schema the document declares for it. Operations that
open outbound connections (DICOM SCU echo/find/retrieve/send) or hand work to the forwarding and storage workers
are left out; a storage target's root path is rewritten into the test's own directory. The figures (operations,
cases, 5xx) are printed per role and in the failure message.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.factories import Session, as_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

ROLES = ("registrar", "report_l1", "dispatcher", "sys_admin", "sec_admin", "audit_admin", "process_admin")
EXAMPLES = 20
# Outbound connections, or work handed to the forwarding/storage workers (issue 11 "Tests").
EXCLUDED = {
    ("POST", "/api/imaging/nodes/{node_id}/echo"),
    ("POST", "/api/imaging/nodes/{node_id}/find"),
    ("POST", "/api/imaging/nodes/{node_id}/retrieve"),
    ("POST", "/api/imaging/studies/{study_id}/send"),
    ("POST", "/api/imaging/studies/{study_id}/forward"),
    ("POST", "/api/imaging/forward/jobs/{job_id}/retry"),
    ("POST", "/api/imaging/storage/tasks"),
}


@dataclass
class Figures:
    operations: int = 0
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)


class _Caller:
    """A logged-in user of one role; a fresh one when a fuzzed call ended the session (logout, disable...)."""

    def __init__(self, app: Flask, role: str) -> None:
        self.app, self.role = app, role
        self.sess: Session = as_user(app, role)

    def ensure(self) -> Session:
        if self.sess.get("/api/auth/me").status_code != 200:
            self.sess = as_user(self.app, self.role)
        return self.sess


def _describe(case: Any, response: Any) -> str:
    body = case.body if not isinstance(case.body, bytes | bytearray) else f"<{len(case.body)} bytes>"
    text = response.text[:300] if hasattr(response, "text") else ""
    return (
        f"{case.method} {case.formatted_path} path={case.path_parameters} query={case.query} "
        f"body={str(body)[:300]} -> {response.status_code} {text}"
    )


def _run_operation(operation: Any, caller: _Caller, tmp: Path, figures: Figures) -> None:
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def probe(case: Any) -> None:
        if operation.method.upper() == "POST" and operation.path == "/api/imaging/storage/targets":
            if isinstance(case.body, dict) and isinstance(case.body.get("root_path"), str):
                case.body["root_path"] = str(tmp / "targets" / uuid.uuid4().hex)  # never outside the test
        sess = caller.ensure()
        response = case.call(session=sess.client, headers={"X-CSRF-Token": sess.csrf})
        figures.cases += 1
        figures.statuses[response.status_code] += 1
        if response.status_code >= 500:
            figures.server_errors.append(_describe(case, response))
            return
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except FailureGroup as exc:  # recorded, reported below with the rest
            figures.nonconforming.append(f"{_describe(case, response)}\n  {str(exc).strip()[:400]}")

    probe()
    figures.operations += 1


@pytest.mark.parametrize("role", ROLES)
def test_dat01_schemathesis_no_5xx_and_conforming_responses(app, tmp_path, role):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    caller = _Caller(app, role)
    figures = Figures()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        _run_operation(operation, caller, tmp_path, figures)
    summary = (
        f"schemathesis role={role}: operations={figures.operations} cases={figures.cases} "
        f"5xx={len(figures.server_errors)} nonconforming={len(figures.nonconforming)} "
        f"statuses={dict(sorted(figures.statuses.items()))}"
    )
    print(summary)
    assert figures.operations >= 80, summary  # the whole document was walked
    assert figures.server_errors == [], summary + "\n" + "\n".join(figures.server_errors)
    assert figures.nonconforming == [], summary + "\n" + "\n".join(figures.nonconforming)
