"""Measurements and marks of a study saved to the server (issue 16; REQ: VIEW-08, AC-02, DSEC-03).

The JSON is shown again to the same or another doctor; the SR TID 1500 sent with it goes into the archive through
the receive path under the study's own institution; a stale write is refused (409); who may read and write follows
engine/visibility.py; writes are audited.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from pydicom.uid import generate_uid
from sqlalchemy import select

from engine import uow
from engine.accounts.models import Institution
from engine.imaging.models import Instance, Series, Study
from tests.dicom.conftest import audit_events
from tests.factories import as_user
from tests.viewer.support import annotation, b64, seed_case, sr_of


def _stored(app: Flask, sop_uid: str) -> tuple[str, str, str]:
    """(institution code, StudyInstanceUID, modality) of an instance in the archive index."""
    with app.app_context():
        s = uow.session()
        row = s.execute(
            select(Institution.code, Study.study_instance_uid, Series.modality)
            .select_from(Instance)
            .join(Study, Study.id == Instance.study_id)
            .join(Series, Series.id == Instance.series_id)
            .join(Institution, Institution.id == Instance.institution_id)
            .where(Instance.sop_instance_uid == sop_uid)
        ).one()
        return row[0], row[1], row[2]


def test_view08_marks_saved_with_sr_in_archive_and_shown_to_another_doctor(app: Flask) -> None:
    seeded = seed_case(app)
    doctor = as_user(app, "report_l1")
    r = doctor.get(seeded.url())
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["version"], r.get_json()["items"], r.headers["ETag"]) == (0, [], '"0"')
    assert r.get_json()["can_edit"] is True
    length = annotation(seeded.images[0], "Length")
    roi = annotation(seeded.images[1], "EllipticalROI", cachedStats={"x": {"mean": 12.5, "area": 30.1}})
    sr = sr_of(seeded.images)
    r = doctor.put(seeded.url(), json={"annotations": [length, roi], "sr": b64(sr)}, headers={"If-Match": '"0"'})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["version"], body["stored"], r.headers["ETag"]) == (1, True, '"1"')
    assert body["sop_instance_uid"] == str(sr.SOPInstanceUID)
    assert body["institution"] == "M01"
    # REQ: DSEC-03 — the SR is in the archive, indexed under the study's own institution (not the doctor's)
    assert _stored(app, str(sr.SOPInstanceUID)) == ("M01", seeded.study_uid, "SR")
    # another doctor who may report on the case sees the marks, with their author
    other = as_user(app, "report_l1")
    r = other.get(seeded.url())
    items = r.get_json()["items"]
    assert [i["annotationUID"] for i in items] == [length["annotationUID"], roi["annotationUID"]]
    assert items[1]["data"]["cachedStats"] == {"x": {"mean": 12.5, "area": 30.1}}
    assert {i["author"]["id"] for i in items} == {doctor.user.id}
    assert items[0]["author"]["name"] == f"测试{doctor.user.username}"
    (event,) = audit_events(app, "viewer_annotations_saved")
    assert (event.user_id, event.object_id, event.outcome) == (doctor.user.id, seeded.study_uid, "success")
    assert event.details["sop_instance_uid"] == str(sr.SOPInstanceUID)
    assert event.details["count"] == 2


def test_view08_stale_write_409_and_authors_kept_per_mark(app: Flask) -> None:
    seeded = seed_case(app)
    first, second = as_user(app, "report_l1"), as_user(app, "report_l1")
    a = annotation(seeded.images[0])
    r = first.put(seeded.url(), json={"annotations": [a], "sr": b64(sr_of(seeded.images))})
    assert r.status_code == 200, r.get_json()
    b = annotation(seeded.images[2], "RectangleROI")
    # the second doctor had opened the study before the first saved: version 0 is stale now
    r = second.put(seeded.url(), json={"annotations": [b], "version": 0})
    assert r.status_code == 409
    assert r.get_json()["code"] == "stale_version"
    assert "已被他人修改" in r.get_json()["message"]
    assert r.get_json()["details"] == {"current_version": 1}
    r = second.put(seeded.url(), json={"annotations": [a, b]}, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["version"] == 2
    authors = {i["annotationUID"]: i["author"]["id"] for i in r.get_json()["items"]}
    assert authors == {a["annotationUID"]: first.user.id, b["annotationUID"]: second.user.id}
    assert r.get_json()["updated_by"]["id"] == second.user.id
    # the same stale write again changes nothing
    r = first.put(seeded.url(), json={"annotations": []}, headers={"If-Match": '"1"'})
    assert r.status_code == 409
    assert len(second.get(seeded.url()).get_json()["items"]) == 2
    # deleting every mark (no SR for an empty report)
    r = first.put(seeded.url(), json={"annotations": []}, headers={"If-Match": '"2"'})
    assert (r.status_code, r.get_json()["items"], r.get_json()["sop_instance_uid"]) == (200, [], None)
    assert len(audit_events(app, "viewer_annotations_saved")) == 3


def test_ac02_member_reads_own_hospital_marks_cannot_write_nor_see_another_hospital(app: Flask) -> None:
    seeded = seed_case(app, "M01")
    doctor = as_user(app, "report_l1")
    r = doctor.put(seeded.url(), json={"annotations": [annotation(seeded.images[0])], "sr": b64(sr_of(seeded.images))})
    assert r.status_code == 200, r.get_json()
    # the member hospital's own clinician reads them, read-only
    r = seeded.requester.get(seeded.url())
    assert (r.status_code, len(r.get_json()["items"]), r.get_json()["can_edit"]) == (200, 1, False)
    r = seeded.requester.put(seeded.url(), json={"annotations": []}, headers={"If-Match": '"1"'})
    assert (r.status_code, r.get_json()["code"]) == (403, "viewer_read_only")
    # another hospital's clinician: not found, and a security alert
    before = len(audit_events(app, "security_alert"))
    stranger = as_user(app, "requester", institution_code="M02")
    for method in ("get", "put"):
        r = getattr(stranger, method)(seeded.url(), json={"annotations": []})
        assert (r.status_code, r.get_json()["code"]) == (404, "not_found"), method
        r = getattr(stranger, method)(seeded.url("annotations", institution="M01"), json={"annotations": []})
        assert r.status_code == 404, method
    assert len(audit_events(app, "security_alert")) >= before + 4
    # a central doctor who sees no case of this patient; an administrator who lists studies but reads no images
    other_case = seed_case(app, "M02")
    assert other_case.study_uid != seeded.study_uid
    for roles in (("report_l2",), ("sys_admin",)):
        r = as_user(app, *roles).get(seeded.url())
        assert r.status_code == 404, roles
    assert len(audit_events(app, "viewer_annotations_saved")) == 1


def test_view08_bad_input_answers_400_with_a_code(app: Flask) -> None:
    seeded = seed_case(app)
    foreign = seed_case(app, "M01")  # another study of the same hospital
    doctor = as_user(app, "report_l1")
    ok = annotation(seeded.images[0])
    cases = [
        ({"annotations": [{**ok, "extra": 1}]}, {}, "validation_error"),
        ({"annotations": [{**ok, "toolName": "Len<script>"}]}, {}, "validation_error"),
        ({"annotations": [{**ok, "sopUid": "not-a-uid"}]}, {}, "validation_error"),
        ({"annotations": "x"}, {}, "validation_error"),
        ({"annotations": [annotation(foreign.images[0])]}, {}, "annotation_foreign_image"),
        ({"annotations": [{**ok, "seriesUid": generate_uid()}]}, {}, "annotation_foreign_image"),
        ({"annotations": [ok, ok]}, {}, "duplicate_annotation"),
        ({"annotations": [ok], "sr": "@@not base64@@"}, {}, "sr_unreadable"),
        ({"annotations": [ok], "sr": "AAAA"}, {}, "sr_unreadable"),
        ({"annotations": [ok], "sr": b64(sr_of(foreign.images))}, {}, "sr_wrong_study"),
        ({"annotations": [ok], "sr": b64(seeded.images[0])}, {}, "sr_wrong_class"),
        ({"annotations": [ok]}, {"If-Match": "abc"}, "bad_if_match"),
        ({"annotations": [ok], "version": 2}, {"If-Match": '"0"'}, "version_mismatch"),
    ]
    # an SR of this study that references an image of another study
    mixed = sr_of(foreign.images, StudyInstanceUID=seeded.study_uid, PatientID=seeded.images[0].PatientID)
    cases.append(({"annotations": [ok], "sr": b64(mixed)}, {}, "sr_foreign_reference"))
    # deep nesting
    deep: dict[str, object] = {}
    node = deep
    for _ in range(14):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    cases.append(({"annotations": [{**ok, "data": deep}]}, {}, "annotation_too_deep"))
    for body, headers, code in cases:
        r = doctor.put(seeded.url(), json=body, headers=headers)
        assert (r.status_code, r.get_json()["code"]) == (400, code), (code, r.get_json())
    r = doctor.put(f"/api/studies/{seeded.study_uid}x/annotations", json={"annotations": []})
    assert (r.status_code, r.get_json()["code"]) == (400, "bad_study_uid")
    # nothing was written, nothing stored
    assert doctor.get(seeded.url()).get_json()["version"] == 0
    assert audit_events(app, "viewer_annotations_saved") == []
    with app.app_context():
        n = uow.session().execute(select(Series.id).where(Series.modality == "SR")).all()
        assert n == []


def test_view08_sr_refused_by_the_receive_path_is_audited_and_nothing_written(app: Flask) -> None:
    seeded = seed_case(app)
    doctor = as_user(app, "report_l1")
    sr = sr_of(seeded.images)
    with warnings.catch_warnings():  # not a conforming UID (a component with a leading zero): the receive path refuses
        warnings.simplefilter("ignore")
        sr.SOPInstanceUID = "1.2.3.04"
        sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
        encoded = b64(sr)
    before = len(audit_events(app, "dicom_store_failed"))
    r = doctor.put(seeded.url(), json={"annotations": [annotation(seeded.images[0])], "sr": encoded})
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["code"] == "invalid_uid"
    assert len(audit_events(app, "dicom_store_failed")) == before + 1
    assert doctor.get(seeded.url()).get_json()["version"] == 0
    with app.app_context():
        assert uow.session().execute(select(Series.id).where(Series.modality == "SR")).all() == []


def test_view08_two_doctors_saving_the_same_version_at_once_one_wins(app: Flask) -> None:
    seeded = seed_case(app)
    doctors = [as_user(app, "report_l1"), as_user(app, "report_l1")]
    bodies = [{"annotations": [annotation(seeded.images[i])]} for i in range(2)]
    barrier = threading.Barrier(2)

    def put(i: int) -> tuple[int, str]:
        barrier.wait()
        r = doctors[i].put(seeded.url(), json=bodies[i], headers={"If-Match": '"0"'})
        return r.status_code, (r.get_json() or {}).get("code", "")

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(put, range(2)))
    assert results == [(200, ""), (409, "stale_version")]
    doc = doctors[0].get(seeded.url()).get_json()
    assert (doc["version"], len(doc["items"])) == (1, 1)
    assert len(audit_events(app, "viewer_annotations_saved")) == 1
