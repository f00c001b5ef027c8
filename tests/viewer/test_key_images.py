"""Key images of a study (issue 16; REQ: RPT-05, AC-02, DSEC-03; UX R13).

Each save writes a Key Object Selection document (TID 2010, "Of Interest") through the receive path under the study's
own institution; the list (with its 打印 flag) is what the report editor's 图像 card and printing read; the member
hospital's clinicians read it; stale writes are refused; writes are audited.
"""

from __future__ import annotations

from io import BytesIO

from flask import Flask
from pydicom import dcmread
from sqlalchemy import select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import Institution, User
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.imaging import targets
from engine.imaging.models import Instance
from engine.viewer import documents
from tests import factories
from tests.dicom import synthetic
from tests.dicom.conftest import audit_events
from tests.factories import as_user
from tests.viewer.support import seed_case

KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def _kos(app: Flask, sop_uid: str) -> tuple[str, object]:
    """The stored KOS: its institution's code and the data set read back from the archive."""
    with app.app_context():
        s = uow.session()
        inst = s.execute(select(Instance).where(Instance.sop_instance_uid == sop_uid)).scalar_one()
        code = s.execute(select(Institution.code).where(Institution.id == inst.institution_id)).scalar_one()
        return code, dcmread(BytesIO(targets.instance_path(inst).read_bytes()))


def _actor(app: Flask, user: factories.TestUser) -> Actor:
    u = uow.session().get(User, user.id)
    assert u is not None
    return auth.actor_for(u, Actor.anonymous(), permissions=effective_permissions(u))


def test_rpt05_key_images_saved_as_kos_in_archive_listed_and_printable(app: Flask) -> None:
    seeded = seed_case(app)
    doctor = as_user(app, "report_l1")
    one, three = seeded.images[0], seeded.images[2]
    items = [
        {"sop_uid": str(one.SOPInstanceUID), "series_uid": str(one.SeriesInstanceUID), "note": "右肺结节"}
        | {"print": True},
        {"sop_uid": str(three.SOPInstanceUID), "series_uid": str(three.SeriesInstanceUID), "frame": 1},
    ]
    r = doctor.put(seeded.url("key-images"), json={"items": items}, headers={"If-Match": '"0"'})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["version"], body["stored"]) == (1, True)
    assert [(i["sop_uid"], i["frame"], i["note"], i["print"]) for i in body["items"]] == [
        (str(one.SOPInstanceUID), 1, "右肺结节", True),
        (str(three.SOPInstanceUID), 1, "", False),
    ]
    assert {i["author"]["id"] for i in body["items"]} == {doctor.user.id}
    # REQ: DSEC-03 — the KOS is indexed under the study's institution, in the study, and says what it selects
    code, kos = _kos(app, body["sop_instance_uid"])
    assert code == "M01"
    assert (kos.SOPClassUID, kos.StudyInstanceUID, kos.Modality) == (KOS, seeded.study_uid, "KO")
    title = kos.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == ("113000", "DCM", "Of Interest")
    selected = [
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for item in kos.ContentSequence
        if item.ValueType == "IMAGE"
    ]
    assert selected == [str(one.SOPInstanceUID), str(three.SOPInstanceUID)]
    notes = [item.TextValue for item in kos.ContentSequence if item.ValueType == "TEXT"]
    assert notes == ["1. 右肺结节"]
    (event,) = audit_events(app, "viewer_key_images_saved")
    assert (event.user_id, event.object_id, event.details["count"]) == (doctor.user.id, seeded.study_uid, 2)
    # the member hospital's clinician sees them (read-only); printing takes the ones marked 打印
    r = seeded.requester.get(seeded.url("key-images"))
    assert (r.status_code, len(r.get_json()["items"]), r.get_json()["can_edit"]) == (200, 2, False)
    with app.app_context():
        printable = documents.printable_key_images(_actor(app, seeded.requester.user), seeded.study_uid)
        assert [i["sop_uid"] for i in printable] == [str(one.SOPInstanceUID)]
    # a second save (one removed) writes version 2 as a new instance of the same KOS series
    r = doctor.put(seeded.url("key-images"), json={"items": items[:1], "version": 1})
    assert r.status_code == 200, r.get_json()
    second = r.get_json()
    assert second["version"] == 2
    assert second["series_instance_uid"] == body["series_instance_uid"]
    assert second["sop_instance_uid"] != body["sop_instance_uid"]
    _code, kos2 = _kos(app, second["sop_instance_uid"])
    assert kos2.InstanceNumber == 2


def test_rpt05_key_images_stale_scoping_and_bad_input(app: Flask) -> None:
    seeded = seed_case(app)
    foreign = seed_case(app, "M02")
    doctor = as_user(app, "report_l1")
    img = seeded.images[0]
    item = {"sop_uid": str(img.SOPInstanceUID), "series_uid": str(img.SeriesInstanceUID)}
    assert doctor.put(seeded.url("key-images"), json={"items": [item]}).status_code == 200
    r = doctor.put(seeded.url("key-images"), json={"items": []}, headers={"If-Match": '"0"'})
    assert (r.status_code, r.get_json()["code"]) == (409, "stale_version")
    assert "关键图像已被他人修改" in r.get_json()["message"]
    bad = [
        ({"items": [{**item, "frame": 0}], "version": 1}, "validation_error"),
        ({"items": [{**item, "note": "x" * 501}], "version": 1}, "validation_error"),
        ({"items": [{**item, "print": "maybe"}], "version": 1}, "validation_error"),
        ({"items": [item, item], "version": 1}, "duplicate_key_image"),
        (
            {
                "items": [
                    {
                        "sop_uid": str(foreign.images[0].SOPInstanceUID),
                        "series_uid": str(foreign.images[0].SeriesInstanceUID),
                    }
                ],
                "version": 1,
            },
            "key_image_foreign_image",
        ),
    ]
    for body, code in bad:
        r = doctor.put(seeded.url("key-images"), json=body)
        assert (r.status_code, r.get_json()["code"]) == (400, code), (code, r.get_json())
    # a member hospital's clinician: own study read-only, another hospital's study not found
    r = seeded.requester.put(seeded.url("key-images"), json={"items": [], "version": 1})
    assert (r.status_code, r.get_json()["code"]) == (403, "viewer_read_only")
    r = foreign.requester.get(seeded.url("key-images"))
    assert r.status_code == 404
    # clearing the list: no document to write, the list is empty for everyone
    r = doctor.put(seeded.url("key-images"), json={"items": [], "version": 1})
    assert (r.status_code, r.get_json()["items"], r.get_json()["stored"]) == (200, [], False)
    assert len(audit_events(app, "viewer_key_images_saved")) == 2


def test_rpt05_case_key_images_for_the_editor_card_and_the_member_hospital(app: Flask) -> None:
    seeded = seed_case(app)
    doctor = as_user(app, "report_l1")
    img = seeded.images[1]
    item = {
        "sop_uid": str(img.SOPInstanceUID),
        "series_uid": str(img.SeriesInstanceUID),
        "note": "见结节",
        "print": True,
    }
    assert doctor.put(seeded.url("key-images"), json={"items": [item]}).status_code == 200
    case_id = seeded.case["id"]
    for who in (doctor, seeded.requester):  # the doctor's 图像 card; the member hospital's clinician, first
        r = who.get(f"/api/cases/{case_id}/key-images")
        assert r.status_code == 200, r.get_json()
        (study,) = r.get_json()
        assert (study["study_uid"], study["institution"], study["version"]) == (seeded.study_uid, "M01", 1)
        assert [(k["sop_uid"], k["note"], k["print"]) for k in study["items"]] == [
            (str(img.SOPInstanceUID), "见结节", True)
        ]
    # another hospital's clinician: the case is not found
    stranger = as_user(app, "requester", institution_code="M02")
    assert stranger.get(f"/api/cases/{case_id}/key-images").status_code == 404


def test_rpt05_key_frame_of_a_multiframe_image_named_in_the_kos(app: Flask) -> None:
    seeded = seed_case(app)
    us = synthetic.image(
        synthetic.base(
            synthetic.US_MULTIFRAME,
            modality="US",
            StudyInstanceUID=seeded.study_uid,
            PatientID=seeded.images[0].PatientID,
        ),
        frames=4,
    )
    app.extensions["viewer_test_seeder"].seed([us], institution="M01")
    doctor = as_user(app, "report_l1")
    item = {"sop_uid": str(us.SOPInstanceUID), "series_uid": str(us.SeriesInstanceUID), "frame": 3}
    r = doctor.put(seeded.url("key-images"), json={"items": [item]})
    assert r.status_code == 200, r.get_json()
    _code, kos = _kos(app, r.get_json()["sop_instance_uid"])
    (image,) = [i for i in kos.ContentSequence if i.ValueType == "IMAGE"]
    ref = image.ReferencedSOPSequence[0]
    assert (ref.ReferencedSOPInstanceUID, int(ref.ReferencedFrameNumber)) == (str(us.SOPInstanceUID), 3)
