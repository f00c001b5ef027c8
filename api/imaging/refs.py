"""An institution as the imaging pages show it, and a batch load of institutions by id (no query per row)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import uow
from engine.accounts.models import Institution


def inst_ref(inst: Institution | None) -> dict[str, Any] | None:
    if inst is None:
        return None
    return {"id": inst.id, "code": inst.code, "name": inst.name, "kind": inst.kind}


def institutions_by_id(ids: set[int]) -> dict[int, Institution]:
    if not ids:
        return {}
    rows = uow.session().execute(select(Institution).where(Institution.id.in_(sorted(ids)))).unique().scalars()
    return {i.id: i for i in rows}
