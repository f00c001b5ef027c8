"""QIDO-RS through dicomweb-client against a live server (issue 15; PS3.18 §10.6; REQ: DSEC-11, AC-02, AC-08).

Instances are indexed through the receive service's indexing step (tests/dicom/archive.py `ingest`), as a device of a
member hospital sends them; the queries go over real HTTP with a logged-in session (tests/dicomweb/conftest.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from pydicom.uid import generate_uid
from requests import HTTPError

from engine import config
from tests.conftest import TEST_SECRET
from tests.dicom import archive, synthetic
from tests.dicom.conftest import audit_events
from tests.dicomweb.conftest import DicomWeb, http_session

NAME, UID, DATE, MODS, INST_CODE = "00100010", "0020000D", "00080020", "00080061", "00091001"


def _study(**tags: Any) -> Any:
    charset = tags.pop("charset", None)
    ds = synthetic.image(
        synthetic.base(synthetic.SECONDARY_CAPTURE, modality=tags.pop("Modality", "OT"), charset=charset)
    )
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _v(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value", [])
    return values[0] if values else None


def _uids(items: list[dict[str, Any]]) -> set[str]:
    return {_v(i, UID) for i in items}


@pytest.fixture
def archive_m01(dicomweb: DicomWeb) -> dict[str, str]:
    """Five studies of member hospital M01: Chinese names in ISO_IR 192 and GB18030, dates across 2025-2026."""
    rows = {
        "utf8": _study(charset="ISO_IR 192", PatientName="王^小明", PatientID="P100", StudyDate="20250110"),
        "gb": _study(charset="GB18030", PatientName="王^大伟", PatientID="P101", StudyDate="20250620"),
        "groups": _study(charset="ISO_IR 192", PatientName="Zhang^San=张^三", PatientID="P102", StudyDate="20260101"),
        "latin": _study(PatientName="Smith^John", PatientID="P103", StudyDate="20261115", AccessionNumber="ACC-9"),
        "ct": _study(PatientName="Li^Si", PatientID="P104", StudyDate="20261201", Modality="CT"),
    }
    dicomweb.seed(list(rows.values()), institution="M01")
    return {k: str(ds.StudyInstanceUID) for k, ds in rows.items()}


def test_dsec11_qido_studies_wildcards_chinese_names_dates_and_keys(
    dicomweb: DicomWeb, archive_m01: dict[str, str]
) -> None:
    _user, client = dicomweb.client("requester", institution_code="M01")
    search = client.search_for_studies
    assert len(search()) == 5
    wang = search(search_filters={"PatientName": "王*"})
    assert _uids(wang) == {archive_m01["utf8"], archive_m01["gb"]}  # ISO_IR 192 and GB18030, both decoded
    assert {_v(i, NAME)["Alphabetic"] for i in wang} == {"王^小明", "王^大伟"}  # ^ kept: data for a DICOM client
    assert _uids(search(search_filters={"PatientName": "王^?伟"})) == {archive_m01["gb"]}
    assert _uids(search(search_filters={"PatientName": "张*"})) == {archive_m01["groups"]}  # ideographic group
    assert _uids(search(search_filters={"PatientName": "ZHANG*"})) == {archive_m01["groups"]}  # case-insensitive
    (grouped,) = search(search_filters={"PatientName": "zhang^san"})
    assert _v(grouped, NAME) == {"Alphabetic": "Zhang^San", "Ideographic": "张^三"}
    assert _uids(search(search_filters={"StudyDate": "20250101-20251231"})) == {archive_m01["utf8"], archive_m01["gb"]}
    assert _uids(search(search_filters={"StudyDate": "20261116-"})) == {archive_m01["ct"]}
    assert _uids(search(search_filters={"StudyDate": "-20250110"})) == {archive_m01["utf8"]}
    assert _uids(search(search_filters={"ModalitiesInStudy": "CT"})) == {archive_m01["ct"]}
    assert _uids(search(search_filters={"AccessionNumber": "ACC-9"})) == {archive_m01["latin"]}
    assert _uids(search(search_filters={"PatientID": "P10?"})) == set(archive_m01.values())
    two = f"{archive_m01['utf8']},{archive_m01['ct']}"
    assert _uids(search(search_filters={"StudyInstanceUID": two})) == {archive_m01["utf8"], archive_m01["ct"]}
    backslash = f"{archive_m01['gb']}\\{archive_m01['latin']}"
    assert _uids(search(search_filters={"0020000D": backslash})) == {archive_m01["gb"], archive_m01["latin"]}
    # fuzzy: any name component's start, case-insensitive
    assert _uids(search(search_filters={"PatientName": "joh"}, fuzzymatching=True)) == {archive_m01["latin"]}
    assert search(search_filters={"PatientName": "joh"}) == []


def test_qido_percent_encoded_values_limit_offset_includefield(dicomweb: DicomWeb, archive_m01: dict[str, str]) -> None:
    user, client = dicomweb.client("requester", institution_code="M01")
    r = dicomweb.get(user, "/dicomweb/studies?PatientName=%E7%8E%8B%2A&includefield=StudyDescription")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/dicom+json")
    assert r.headers["Cache-Control"] == "no-store"
    assert len(r.json()) == 2
    assert all("00081030" in i for i in r.json())
    ordered = client.search_for_studies()
    page1 = client.search_for_studies(limit=2)
    page2 = client.search_for_studies(limit=2, offset=2)
    page3 = client.search_for_studies(limit=2, offset=4)
    assert [_v(i, UID) for i in page1 + page2 + page3] == [_v(i, UID) for i in ordered]
    assert (len(page1), len(page3)) == (2, 1)
    assert "Warning" not in dicomweb.get(user, "/dicomweb/studies?limit=2").headers  # the client's limit, not the cap
    # includefield: keywords, tags, comma lists, repeated, `all`
    (item,) = client.search_for_studies(
        search_filters={"PatientID": "P103"}, fields=["StudyDescription,00200010", "PatientAge"]
    )
    assert {"00081030", "00200010"} <= set(item)
    assert "00101010" not in item  # PatientAge: a valid attribute the index does not hold, not invented
    (default,) = client.search_for_studies(search_filters={"PatientID": "P103"})
    assert "00081030" not in default
    (everything,) = client.search_for_studies(search_filters={"PatientID": "P103"}, fields=["all"])
    assert {"00081030", "00200010", "00101010"} - set(everything) == {"00101010"}
    assert _v(everything, "00080080") == _v(default, "00080080")  # InstitutionName
    assert _v(default, INST_CODE) == "M01"
    assert _v(default, "00090010") == "TELERAD"
    assert _v(default, "00201208") == 1  # NumberOfStudyRelatedInstances


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("Bogus=1", "unknown_parameter"),
        ("SOPInstanceUID=1.2", "unsupported_key"),  # an instance key on /studies
        ("StudyDate=2025-01", "bad_value"),
        ("limit=-1", "bad_parameter"),
        ("offset=x", "bad_parameter"),
        ("fuzzymatching=maybe", "bad_parameter"),
        ("includefield=NotAnAttribute", "unknown_attribute"),
        ("PatientID=a&PatientID=b", "repeated_key"),
    ],
)
def test_qido_bad_query_answers_400_in_chinese(
    dicomweb: DicomWeb, archive_m01: dict[str, str], query: str, code: str
) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    r = dicomweb.get(user, f"/dicomweb/studies?{query}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == code
    assert any("\u4e00" <= c <= "\u9fff" for c in body["message"]), body


def test_qido_series_and_instances_at_every_level(dicomweb: DicomWeb) -> None:
    series = archive.small_series(3, PatientName="Zhao^Liu", PatientID="P9")
    other = archive.small_series(2, PatientName="Zhao^Liu", PatientID="P9", Modality="MR")
    dicomweb.seed(series + other, institution="M01")
    user, client = dicomweb.client("requester", institution_code="M01")
    study_uid, series_uid = str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    (se,) = client.search_for_series(study_uid)
    assert (_v(se, "0020000E"), _v(se, "00080060"), _v(se, "00201209")) == (series_uid, "CT", 3)
    assert {_v(s, "00080060") for s in client.search_for_series()} == {"CT", "MR"}
    assert {_v(s, "00080060") for s in client.search_for_series(search_filters={"Modality": "MR"})} == {"MR"}
    sops = {str(ds.SOPInstanceUID) for ds in series}
    assert {_v(i, "00080018") for i in client.search_for_instances(study_uid, series_uid)} == sops
    assert {_v(i, "00080018") for i in client.search_for_instances(study_uid)} == sops
    every = client.search_for_instances(search_filters={"PatientID": "P9"})
    assert len(every) == 5
    assert all(_v(i, NAME) == {"Alphabetic": "Zhao^Liu"} for i in every)
    (one,) = client.search_for_instances(study_uid, search_filters={"InstanceNumber": "2"})
    assert _v(one, "00200013") == 2
    r = dicomweb.get(user, f"/dicomweb/studies/{study_uid}/series")
    assert (r.headers["X-Telerad-Institution"], r.headers["X-Telerad-Study-Choice"]) == ("M01", "only")
    r = dicomweb.get(user, f"/dicomweb/studies/{study_uid}/series/{generate_uid()}/instances")
    assert r.status_code == 204
    assert r.content == b""
    # one audit event of the access per session, study and day, however many requests (DSEC-10)
    assert len([e for e in audit_events(dicomweb.app, "dicomweb_study_accessed") if e.object_id]) == 1


def test_dsec11_qido_results_capped_with_warning(app: Flask, dicomweb: DicomWeb) -> None:
    app.extensions["telerad_settings"].qido_max_results = 3
    dicomweb.seed([_study(PatientID=f"C{i}") for i in range(5)], institution="M01")
    user, client = dicomweb.client("requester", institution_code="M01")
    r = dicomweb.get(user, "/dicomweb/studies")
    assert len(r.json()) == 3
    assert r.headers["Warning"].startswith("299 ")
    assert len(client.search_for_studies(limit=10)) == 3
    r = dicomweb.get(user, "/dicomweb/studies?offset=3")
    assert len(r.json()) == 2
    assert "Warning" not in r.headers


def test_qido_refuses_an_accept_it_cannot_answer(dicomweb: DicomWeb) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    r = dicomweb.get(user, "/dicomweb/studies", headers={"Accept": "application/dicom+xml"})
    assert (r.status_code, r.json()["code"]) == (406, "not_acceptable")


def test_qido_needs_a_session(dicomweb: DicomWeb) -> None:
    client = DICOMwebClient(url=dicomweb.url)
    with pytest.raises(HTTPError) as err:
        client.search_for_studies()
    assert err.value.response.status_code == 401


def test_dsec10_access_audited_once_per_session_study_and_day_under_concurrent_requests(dicomweb: DicomWeb) -> None:
    """Twelve concurrent study-scoped queries of one session (real threads, one connection each): one audit event;
    another session of the same user is another principal (REQ: DSEC-10)."""
    series = archive.small_series(2, PatientID="AUD1")
    dicomweb.seed(series, institution="M01")
    user = dicomweb.user("requester", institution_code="M01")
    cookies = dicomweb.session(user).cookies
    uid = str(series[0].StudyInstanceUID)

    def one(_: int) -> int:
        with requests.Session() as s:
            s.cookies.update(cookies)
            return s.get(f"{dicomweb.base}/dicomweb/studies/{uid}/instances", timeout=60).status_code

    with ThreadPoolExecutor(12) as pool:
        assert set(pool.map(one, range(12))) == {200}
    events = audit_events(dicomweb.app, "dicomweb_study_accessed")
    assert len(events) == 1
    assert (events[0].details["study_instance_uid"], events[0].details["via"]) == (uid, "qido")
    assert dicomweb.get(user, f"/dicomweb/studies/{uid}/series").status_code == 200
    assert len(audit_events(dicomweb.app, "dicomweb_study_accessed")) == 1
    second = http_session(dicomweb.base, user)  # a second login: another session
    assert second.get(f"{dicomweb.base}/dicomweb/studies/{uid}/series", timeout=60).status_code == 200
    assert len(audit_events(dicomweb.app, "dicomweb_study_accessed")) == 2
    assert dicomweb.get(user, "/dicomweb/studies").status_code == 200  # a search is no access of a study
    assert len(audit_events(dicomweb.app, "dicomweb_study_accessed")) == 2


def test_dicomweb_rate_limit_is_per_session_not_per_ip(app: Flask, dicomweb: DicomWeb) -> None:
    app.extensions["telerad_settings"].dicomweb_rate_limit = "5 per minute"
    first, second = (dicomweb.user("requester", institution_code="M01") for _ in range(2))
    assert [dicomweb.get(first, "/dicomweb/studies").status_code for _ in range(5)] == [204] * 5
    r = dicomweb.get(first, "/dicomweb/studies")
    assert r.status_code == 429
    assert dicomweb.get(second, "/dicomweb/studies").status_code == 204  # same address, another session
    assert dicomweb.get(first, "/api/auth/me").status_code == 200  # /api keeps its own limit


@pytest.mark.parametrize(
    ("key", "value"),
    [("TELERAD_QIDO_MAX_RESULTS", "5000"), ("TELERAD_QIDO_MAX_RESULTS", "0"), ("TELERAD_DICOMWEB_RATE_LIMIT", "lots")],
)
def test_dsec11_dicomweb_settings_outside_their_bounds_refuse_to_start(tmp_path: Path, key: str, value: str) -> None:
    env = {"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path), "TELERAD_SECRET_KEY": TEST_SECRET, key: value}
    with pytest.raises(config.ConfigError, match=key):
        config.load_settings(env)
    ok = config.load_settings(
        {**env, "TELERAD_QIDO_MAX_RESULTS": "200", "TELERAD_DICOMWEB_RATE_LIMIT": "600 per minute"}
    )
    assert (ok.qido_max_results, ok.dicomweb_rate_limit) == (200, "600 per minute")
    assert (config.Settings().qido_max_results, config.Settings().dicomweb_rate_limit) == (1000, "6000 per minute")
