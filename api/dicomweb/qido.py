"""QIDO-RS (PS3.18 §10.6; issue 15): search for studies, series and instances, as application/dicom+json.

    GET /dicomweb/studies
    GET /dicomweb/studies/{study}/series            GET /dicomweb/series
    GET /dicomweb/studies/{study}/series/{series}/instances
    GET /dicomweb/studies/{study}/instances         GET /dicomweb/instances

Besides the DICOM query parameters (engine/dicomweb/qido.py), telerad takes `institution=CODE` (a study stored by two
institutions: which copy; on the search resources, only that institution's studies) and, on the study-scoped
resources, `case=ID` (the case in context). A study-scoped answer names the copy it used: `X-Telerad-Institution`
(the institution code) and `X-Telerad-Study-Choice` (institution | case | latest | only; engine/dicomweb/resolve.py),
and counts as an access of that study (DSEC-10, once per session or client, study and day).
Errors are the API's JSON ({"code", "message" in Chinese, "details"}): 400 for an unknown or malformed parameter,
404 for a study outside the caller's visibility (and a security alert), 406 for an Accept the service cannot answer.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, request
from sqlalchemy import select

from api.dicomweb import DICOM_JSON, blp
from api.security import current_actor, requires
from engine import uow
from engine.accounts.models import Institution
from engine.dicomweb import access_audit, qido, resolve
from engine.errors import DomainError, NotFound, ValidationFailed
from engine.imaging.models import Study

_TELERAD_PARAMS = ("institution", "case")
_ACCEPTABLE = (DICOM_JSON, "application/json")


class NotAcceptable(DomainError):
    status = 406


def _check_accept() -> None:
    accept = request.accept_mimetypes
    if not accept or accept.best_match([*_ACCEPTABLE]) is not None:
        return
    raise NotAcceptable("not_acceptable", "只支持 application/dicom+json 格式的查询结果")


def _params() -> tuple[list[tuple[str, str]], str | None, str | None]:
    pairs, institution, case = [], None, None
    for name, value in request.args.items(multi=True):
        if name == "institution":
            institution = value.strip() or None
        elif name == "case":
            case = value.strip() or None
        else:
            pairs.append((name, value))
    return pairs, institution, case


def _institution_id(code: str) -> int:
    found = uow.session().execute(select(Institution.id).where(Institution.code == code)).scalar_one_or_none()
    if found is None:
        raise NotFound("unknown_institution", f"机构代码不存在：{code[:32]}")
    return int(found)


def _case_id(value: str | None) -> int | None:
    """The `case=` parameter: a case id."""
    if value is None:
        return None
    if not value.isdigit() or len(value) > 10:
        raise ValidationFailed("bad_parameter", f"参数 case 必须是病例编号（整数）：{value[:32]!r}")
    return int(value)


def case_param() -> int | None:
    """The request's `case=` (the case in context, for which copy of a study; engine/dicomweb/resolve.py)."""
    return _case_id(request.args.get("case"))


def _answer(result: qido.Result, headers: dict[str, str]) -> Response:
    if result.capped:
        headers["Warning"] = (
            '299 telerad "The number of results exceeded the maximum supported by the server. '
            'Additional results can be requested."'
        )
    if not result.items:
        return Response(status=204, headers=headers)
    body = result.body()  # the items are encoded already (engine/dicomweb/qido.py)
    return Response(body, status=200, mimetype=DICOM_JSON, headers=headers)


def _search(resource: str, study_uid: str | None = None, series_uid: str | None = None) -> Response:
    _check_accept()
    actor = current_actor()
    params, institution, case = _params()
    settings: Any = current_app.extensions["telerad_settings"]
    headers: dict[str, str] = {}
    study: Study | None = None
    institution_id = None
    if study_uid is not None:
        study, why = resolve.study_for(actor, study_uid, institution, _case_id(case))
        code = resolve.institution_codes({study.institution_id}).get(study.institution_id, ("", ""))[0]
        headers["X-Telerad-Institution"] = code
        headers["X-Telerad-Study-Choice"] = why
    elif case is not None:
        raise ValidationFailed("bad_parameter", "参数 case 只用于某一检查之下的查询")
    elif institution is not None:
        institution_id = _institution_id(institution)
    try:
        result = qido.search(
            actor,
            resource,
            params,
            base_url=request.url_root.rstrip("/") + blp.url_prefix,
            study=study,
            series_uid=series_uid,
            institution_id=institution_id,
            max_results=settings.qido_max_results,
        )
    except qido.QidoError as exc:
        raise ValidationFailed(exc.code, exc.message) from exc
    # REQ: DSEC-10 — the search, once per request (110112), as C-FIND; a study-scoped one is also an access
    bearer = g.get("oauth")
    access_audit.queried(
        actor,
        result.level,
        result.keys,
        len(result.items),
        resource=resource,
        institution=institution,
        client_id=bearer.client_id if bearer is not None else None,
    )
    if study is not None:
        access_audit.accessed(actor, study, via="qido")
    return _answer(result, headers)


@blp.route("/studies", methods=["GET"])
@requires("image.read")
def search_studies() -> Response:
    return _search("studies")


@blp.route("/series", methods=["GET"])
@requires("image.read")
def search_series() -> Response:
    return _search("series")


@blp.route("/instances", methods=["GET"])
@requires("image.read")
def search_instances() -> Response:
    return _search("instances")


@blp.route("/studies/<string:study>/series", methods=["GET"])
@requires("image.read")
def search_study_series(study: str) -> Response:
    return _search("study_series", study)


@blp.route("/studies/<string:study>/instances", methods=["GET"])
@requires("image.read")
def search_study_instances(study: str) -> Response:
    return _search("study_instances", study)


@blp.route("/studies/<string:study>/series/<string:series>/instances", methods=["GET"])
@requires("image.read")
def search_series_instances(study: str, series: str) -> Response:
    return _search("series_instances", study, series)
