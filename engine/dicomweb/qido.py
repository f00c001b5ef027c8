"""QIDO-RS search (PS3.18 §10.6; issue 15): query parameters → the archive's one matcher (engine/imaging/queries.py,
shared with DIMSE C-FIND) limited by the actor's study visibility (engine/visibility.py) → DICOM JSON (json.py).

Query parameters (§8.3.4): `{attribute}={value}` by keyword or tag ("PatientName", "00100010"); `includefield`
(keyword or tag, comma lists, repeatable, `all`); `fuzzymatching` (true/false); `limit`, `offset`. Matching follows
C-FIND's rules: `*`/`?` wildcards (PN case-insensitive, any `=` group of a PN: "王*" finds "Wang^Xiaoming=王^小明"),
DA/TM ranges, UID lists (comma or backslash separated, or the key repeated), ModalitiesInStudy. fuzzymatching=true
matches PN by the start of any name component or the 拼音首字母 of the matched patient record (queries.py).
An unknown or unsupported key, a malformed value or parameter answers 400 with a Chinese message (QidoError).

Results are capped (DSEC-11: at most `max_results`, ≤ 1,000): when the cap, not the client's own `limit`, cut the
list, `capped` is set and the API sends `Warning: 299 …` (§8.3.4.4.1). No match: 204 No Content, as PS3.18
§8.3.4.4.1 has it today (CP-2473 would make it 200 with an empty payload; dicomweb-client accepts both).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_

from engine import visibility
from engine.actor import Actor
from engine.dicomweb import json as dj
from engine.dicomweb.resolve import institution_codes
from engine.imaging import queries
from engine.imaging.models import Study

MAX_RESULTS = 1000  # DSEC-11
CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
_UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}

# Default return attributes (PS3.18 Tables 10.6.3-3 … -5), as far as the index holds them.
STUDY_ATTRS = (
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "InstitutionName",
)
SERIES_ATTRS = (
    "SpecificCharacterSet",
    "StudyInstanceUID",
    "Modality",
    "SeriesDescription",
    "RetrieveURL",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "InstitutionName",
)
INSTANCE_ATTRS = (
    "SpecificCharacterSet",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "RetrieveURL",
    "InstanceNumber",
    "InstitutionName",
)
# resource → (matcher level, default attributes); "study" / "series" in the name: scoped by the path's UIDs.
RESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "studies": ("STUDY", STUDY_ATTRS),
    "series": ("SERIES", STUDY_ATTRS + SERIES_ATTRS),
    "study_series": ("SERIES", SERIES_ATTRS),
    "instances": ("IMAGE", STUDY_ATTRS + SERIES_ATTRS + INSTANCE_ATTRS),
    "study_instances": ("IMAGE", SERIES_ATTRS + INSTANCE_ATTRS),
    "series_instances": ("IMAGE", INSTANCE_ATTRS),
}
_COUNTS = {
    "STUDY": {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"},
    "SERIES": {"NumberOfSeriesRelatedInstances"},
    "IMAGE": set(),
}


class QidoError(ValueError):
    """A query the server cannot process: 400 with `code` and a Chinese message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Query:
    keys: dict[str, str] = field(default_factory=dict)
    include: set[str] = field(default_factory=set)
    include_all: bool = False
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0


@dataclass
class Result:
    """The matches, each one DICOM JSON object already encoded (`body` joins them), and whether the cap cut them."""

    items: list[str]
    capped: bool
    level: str = ""
    keys: dict[str, str] = field(default_factory=dict)  # the matching keys, with the path's UIDs (for the audit)

    def body(self) -> str:
        return "[" + ",".join(self.items) + "]"


def _int(name: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise QidoError("bad_parameter", f"参数 {name} 必须是非负整数：{value[:32]!r}")
    return n


def parse(level: str, params: list[tuple[str, str]]) -> Query:
    """The query parameters (name, value pairs in request order, values percent-decoded) of a search at `level`."""
    q = Query()
    allowed = queries.KEYS_BY_LEVEL[level]
    for raw_name, value in params:
        name = raw_name.strip()
        lower = name.lower()
        if lower in CONTROL:
            if lower == "limit":
                q.limit = _int("limit", value)
            elif lower == "offset":
                q.offset = _int("offset", value)
            elif lower == "fuzzymatching":
                if value.strip().lower() not in ("true", "false"):
                    raise QidoError("bad_parameter", f"参数 fuzzymatching 只能是 true 或 false：{value[:32]!r}")
                q.fuzzy = value.strip().lower() == "true"
            else:
                for part in (p.strip() for p in value.split(",")):
                    if part.lower() == "all":
                        q.include_all = True
                    elif part:
                        tag = dj.tag_of(part)
                        kw = dj.keyword_of(tag) if tag else None
                        if kw is None:
                            raise QidoError("unknown_attribute", f"includefield 中的属性无法识别：{part[:64]!r}")
                        q.include.add(kw)
            continue
        tag = dj.tag_of(name)
        keyword = dj.keyword_of(tag) if tag else None
        if keyword is None:
            raise QidoError("unknown_parameter", f"未知的查询参数：{name[:64]!r}")
        if keyword not in allowed:
            raise QidoError("unsupported_key", f"此级别不支持按 {keyword} 查询")
        if keyword in _UID_KEYS:
            uids = [u.strip() for u in value.replace(",", "\\").split("\\") if u.strip()]
            q.keys[keyword] = "\\".join([*filter(None, q.keys.get(keyword, "").split("\\")), *uids])
        elif keyword in q.keys:
            raise QidoError("repeated_key", f"查询键 {keyword} 重复")
        else:
            q.keys[keyword] = value
    return q


def _retrieve_url(base: str, row: dict[str, Any], level: str, code: str | None) -> str:
    url = f"{base}/studies/{row['StudyInstanceUID']}"
    if level in ("SERIES", "IMAGE"):
        url += f"/series/{row['SeriesInstanceUID']}"
    if level == "IMAGE":
        url += f"/instances/{row['SOPInstanceUID']}"
    return f"{url}?institution={code}" if code else url


def search(
    actor: Actor,
    resource: str,
    params: list[tuple[str, str]],
    *,
    base_url: str,
    study: Study | None = None,
    series_uid: str | None = None,
    institution_id: int | None = None,
    max_results: int = MAX_RESULTS,
) -> Result:
    """Run a QIDO-RS search of `resource` (a RESOURCES key) for `actor`. `study`: the path's study, already resolved
    (engine/dicomweb/resolve.py study_for) for the study-scoped resources; `series_uid` the path's series;
    `institution_id`: only that institution's studies (telerad's `institution=` parameter).

    Raises:
        QidoError: unknown or unsupported key, malformed value or parameter.
    """
    level, defaults = RESOURCES[resource]
    q = parse(level, params)
    visible = visibility.clause(actor, Study)
    keys = dict(q.keys)
    if study is not None:  # the path's study: exactly that institution's copy
        visible = and_(visible, Study.id == study.id)
        keys["StudyInstanceUID"] = study.study_instance_uid
    if series_uid is not None:
        keys["SeriesInstanceUID"] = series_uid
    if institution_id is not None:
        visible = and_(visible, Study.institution_id == institution_id)
    cap = min(max_results, MAX_RESULTS)
    limit = cap if q.limit is None or q.limit == 0 else min(q.limit, cap)
    want = _COUNTS[level]
    try:
        rows = queries.match(
            queries.Scope.studies(visible), level, keys, limit=limit + 1, offset=q.offset, want=want, fuzzy=q.fuzzy
        )
    except queries.QueryError as exc:
        raise QidoError("bad_value", str(exc)) from exc
    more = len(rows) > limit
    rows = rows[:limit]
    capped = more and (q.limit is None or q.limit == 0 or q.limit > cap)
    spec = _spec(_attributes(defaults, q, keys, rows))
    codes = institution_codes({r["_institution_id"] for r in rows})
    return Result([_item(r, spec, level, base_url, codes, actor.is_central) for r in rows], capped, level, keys)


def _attributes(defaults: tuple[str, ...], q: Query, keys: dict[str, str], rows: list[dict[str, Any]]) -> list[str]:
    names = list(dict.fromkeys([*defaults, *keys, *sorted(q.include)]))
    if q.include_all and rows:
        names += [k for k in rows[0] if not k.startswith("_") and k not in names]
    return names


_CONSTANT = {"SpecificCharacterSet": "ISO_IR 192", "InstanceAvailability": "ONLINE"}
_CREATOR, _CODE = "_private_creator", "_institution_code"  # telerad's private elements in a `_spec`


def _spec(names: list[str]) -> list[tuple[str, str, str]]:
    """The answer's elements in tag order, (tag, keyword, VR), telerad's private block among them: worked out once
    per search, not per row (issue 15: per-row keyword lookups and sorting were a fifth of a QIDO-RS request)."""
    spec = [(*dj.tag_and_vr(name), name) for name in names]
    spec += [(dj.PRIVATE_CREATOR_TAG, "LO", _CREATOR), (dj.INSTITUTION_CODE_TAG, "LO", _CODE)]
    by_tag = dict((tag, (tag, name, vr)) for tag, vr, name in spec)  # a tag named twice: the last, as before
    return sorted(by_tag.values())


@functools.cache
def _constant(tag: str, vr: str, name: str) -> str:
    return f'"{tag}":{dj.element_json(vr, _CONSTANT[name])}'


def _item(
    row: dict[str, Any],
    spec: list[tuple[str, str, str]],
    level: str,
    base: str,
    codes: dict[int, tuple[str, str]],
    central: bool,
) -> str:
    """One match as DICOM JSON text (engine/dicomweb/json.py element_json per attribute, in tag order)."""
    code, inst_name = codes.get(row["_institution_id"], ("", ""))
    parts: list[str] = []
    for tag, name, vr in spec:
        if name in _CONSTANT:
            parts.append(_constant(tag, vr, name))
            continue
        if name == "InstitutionName":
            value = inst_name
        elif name == "RetrieveURL":
            value = _retrieve_url(base, row, level, code if central else None)
        elif name == _CREATOR:
            parts.append(f'"{tag}":{{"vr":"LO","Value":[{dj.text_json(dj.PRIVATE_CREATOR)}]}}')
            continue
        elif name == _CODE:
            parts.append(f'"{tag}":{{"vr":"LO","Value":[{dj.text_json(code)}]}}')
            continue
        elif name in row:
            value = row[name]
        else:
            continue
        parts.append(f'"{tag}":{dj.element_json(vr, value)}')
    return "{" + ",".join(parts) + "}"
