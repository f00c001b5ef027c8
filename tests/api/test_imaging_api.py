"""/api/imaging: devices (IMG-02), studies with member-hospital isolation (AC-02/AC-08), conflicts (DSEC-06),
SR text (DCM-06), unmatched studies (IMG-06) and the SCU actions against real peers (DCM-03/04): telerad's own SCP
and a pynetdicom Q/R SCP standing in for a hospital PACS."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select

from dicom import scp as scp_mod
from engine import uow
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import Instance, InstanceConflict, Study
from tests.dicom.conftest import (  # noqa: F401
    add_node,
    audit_events,
    count,
    fresh_copy,
    sample_file,
    scp,
    store,
    worker_applies_ingest_events,
)
from tests.factories import as_user, institution

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_body(app: Flask, **over: Any) -> dict[str, Any]:
    body = {
        "aet": "CT_M01",
        "host": "10.1.2.3",
        "port": 104,
        "institution_id": institution(app, "M01").id,
        "allow": ["echo", "store"],
        "description": "一号 CT",
    }
    return {**body, **over}


def _ct(tmp: Path, name: str, **tags: Any) -> Path:
    return fresh_copy(sample_file("CT_small.dcm"), tmp / name, **tags)


def _sr(tmp: Path, study_uid: str | None = None) -> Path:
    """A synthetic Basic Text SR with Chinese text (ISO_IR 192)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.PatientName = "张^三"
    ds.PatientID = "SR001"
    ds.StudyDate = "20260101"
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"

    def code(value: str, meaning: str) -> Dataset:
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "99TEST", meaning
        return c

    ds.ConceptNameCodeSequence = [code("R1", "影像诊断报告")]
    findings = Dataset()
    findings.RelationshipType, findings.ValueType = "CONTAINS", "TEXT"
    findings.ConceptNameCodeSequence = [code("F1", "影像所见")]
    findings.TextValue = "右肺上叶见结节影，边界清。"
    impression = Dataset()
    impression.RelationshipType, impression.ValueType = "CONTAINS", "TEXT"
    impression.ConceptNameCodeSequence = [code("I1", "诊断意见")]
    impression.TextValue = "右肺上叶结节，建议随访。"
    size = Dataset()
    size.RelationshipType, size.ValueType = "HAS PROPERTIES", "NUM"
    size.ConceptNameCodeSequence = [code("S1", "结节大小")]
    mv = Dataset()
    mv.NumericValue = "8"
    mv.MeasurementUnitsCodeSequence = [code("mm", "毫米")]
    size.MeasuredValueSequence = [mv]
    findings.ContentSequence = [size]
    ds.ContentSequence = [findings, impression]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp / f"sr-{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _study_id(app: Flask, uid: str) -> int:
    with app.app_context():
        try:
            return int(uow.session().execute(select(Study.id).where(Study.study_instance_uid == uid)).scalar_one())
        finally:
            uow.session().rollback()


# --- devices (IMG-02) ------------------------------------------------------------------------------------------
def test_img02_admin_registers_edits_disables_a_node_and_each_change_is_audited(app: Flask) -> None:
    admin = as_user(app, "sys_admin")
    r = admin.post("/api/imaging/nodes", json=_node_body(app, cert_fingerprint="AB:" * 31 + "AB", tls_required=True))
    assert r.status_code == 201, r.get_json()
    node = r.get_json()
    assert (node["aet"], node["port"], node["allow"], node["institution"]["code"]) == (
        "CT_M01",
        104,
        ["echo", "store"],
        "M01",
    )
    assert node["cert_fingerprint"] == "ab" * 32
    assert node["tls_required"] is True
    # the same AE on the same host again → a Chinese validation error with a machine code
    r = admin.post("/api/imaging/nodes", json=_node_body(app))
    assert (r.status_code, r.get_json()["code"]) == (400, "node_exists")
    assert "已登记" in r.get_json()["message"]
    # the same AE on another host is another device
    other = admin.post("/api/imaging/nodes", json=_node_body(app, host="10.1.2.4")).get_json()
    r = admin.patch(f"/api/imaging/nodes/{other['id']}", json={"host": "10.1.2.3"})
    assert (r.status_code, r.get_json()["code"]) == (400, "node_exists")
    for bad, field in (
        ({"aet": ""}, "aet"),
        ({"aet": "X" * 17}, "aet"),
        ({"port": 70000}, "port"),
        ({"allow": ["echo", "telnet"]}, "allow.1"),
        ({"institution_id": institution(app, "M01").id, "id": 5}, "id"),
    ):
        r = admin.post("/api/imaging/nodes", json=_node_body(app, **{"aet": "BAD1", **bad}))
        assert (r.status_code, r.get_json()["code"]) == (400, "validation_error"), bad
        assert field in r.get_json()["details"]["fields"], r.get_json()
    r = admin.post("/api/imaging/nodes", json=_node_body(app, aet="BAD2", host="a b"))
    assert (r.status_code, r.get_json()["code"]) == (400, "invalid_host")
    r = admin.post("/api/imaging/nodes", json=_node_body(app, aet="BAD3", cert_fingerprint="xyz"))
    assert (r.status_code, r.get_json()["code"]) == (400, "invalid_fingerprint")

    url = f"/api/imaging/nodes/{node['id']}"
    r = admin.patch(url, json={"allow": ["echo", "store", "find"], "port": 4242, "description": "改"})
    assert r.status_code == 200
    assert r.get_json()["allow"] == ["echo", "store", "find"]
    assert r.get_json()["port"] == 4242
    assert admin.patch(url, json={"enabled": False}).get_json()["enabled"] is False
    assert admin.get(url).get_json()["enabled"] is False
    listed = admin.get("/api/imaging/nodes", query_string={"enabled": "false"}).get_json()
    assert [n["id"] for n in listed] == [node["id"]]
    assert [n["aet"] for n in admin.get("/api/imaging/nodes", query_string={"q": "CT_"}).get_json()] == [
        "CT_M01",
        "CT_M01",
    ]
    assert len(audit_events(app, "dicom_node_created")) == 2
    assert len(audit_events(app, "dicom_node_updated")) == 2
    assert {o["code"] for o in admin.get("/api/imaging/operations").get_json()} >= {"echo", "store", "mpps"}


def test_img02_ac02_member_admin_sees_only_own_nodes_and_another_hospitals_id_is_404(app: Flask) -> None:
    central = as_user(app, "sys_admin")
    m02_node = central.post("/api/imaging/nodes", json=_node_body(app, institution_id=institution(app, "M02").id))
    m02_id = m02_node.get_json()["id"]
    m01 = as_user(app, "sys_admin", institution_code="M01")
    assert m01.post("/api/imaging/nodes", json=_node_body(app, aet="DR_M01")).status_code == 201
    assert [n["institution"]["code"] for n in m01.get("/api/imaging/nodes").get_json()] == ["M01"]
    assert m01.get("/api/imaging/nodes", query_string={"institution_id": institution(app, "M02").id}).get_json() == []
    before = len(audit_events(app, "security_alert"))
    for method, url, body in (
        ("GET", f"/api/imaging/nodes/{m02_id}", None),
        ("PATCH", f"/api/imaging/nodes/{m02_id}", {"enabled": False}),
        ("POST", f"/api/imaging/nodes/{m02_id}/echo", None),
    ):
        r = getattr(m01, method.lower())(url, json=body)
        assert (r.status_code, r.get_json()["code"]) == (404, "not_found"), url
    assert len(audit_events(app, "security_alert")) - before == 3
    # registering a node for another hospital is refused the same way
    r = m01.post("/api/imaging/nodes", json=_node_body(app, aet="X1", institution_id=institution(app, "M02").id))
    assert r.status_code == 404
    assert central.get(f"/api/imaging/nodes/{m02_id}").get_json()["enabled"] is True
    assert central.get("/api/imaging/nodes/999999").status_code == 404


def test_img02_ac03_doctors_and_other_admins_cannot_manage_devices(app: Flask) -> None:
    for role in ("report_l1", "requester", "sec_admin", "audit_admin"):
        user = as_user(app, role)
        for method, url, body in (
            ("GET", "/api/imaging/nodes", None),
            ("POST", "/api/imaging/nodes", _node_body(app)),
            ("PATCH", "/api/imaging/nodes/1", {"enabled": False}),
            ("POST", "/api/imaging/nodes/1/echo", None),
            ("GET", "/api/imaging/conflicts", None),
        ):
            r = getattr(user, method.lower())(url, json=body)
            assert (r.status_code, r.get_json()["code"]) == (403, "forbidden"), (role, url)


# --- studies, SR, conflicts (AC-02, DCM-06, DSEC-06) -----------------------------------------------------------
@pytest.fixture
def archive(app: Flask, scp: scp_mod.Running, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    """Two member hospitals' devices, each storing one CT study through telerad's SCP; M01 also an SR."""
    add_node(app, "MOD_M01", institution="M01")
    add_node(app, "MOD_M02", institution="M02")
    a = _ct(tmp_path, "a.dcm", PatientName="LI^SI", PatientID="P-A", AccessionNumber="ACC-A")
    b = _ct(tmp_path, "b.dcm", PatientName="WANG^WU", PatientID="P-B", AccessionNumber="ACC-B")
    sr_path = _sr(tmp_path)
    assert store(scp.port, "MOD_M01", [a, sr_path]) == [0, 0]
    assert store(scp.port, "MOD_M02", [b]) == [0]
    worker_applies_ingest_events(app)  # the audit events and exam matches of the three new studies
    return {
        "a": a,
        "b": b,
        "sr": sr_path,
        "m01_study": _study_id(app, str(dcmread(a).StudyInstanceUID)),
        "m02_study": _study_id(app, str(dcmread(b).StudyInstanceUID)),
        "sr_study": _study_id(app, str(dcmread(sr_path).StudyInstanceUID)),
    }


def test_ac02_ac08_member_hospital_sees_only_its_studies_central_admin_sees_all(
    app: Flask, archive: dict[str, Any]
) -> None:
    m01 = as_user(app, "requester", institution_code="M01")
    page = m01.get("/api/imaging/studies").get_json()
    assert page["total"] == 2
    assert {s["institution"]["code"] for s in page["items"]} == {"M01"}
    assert m01.get("/api/imaging/studies", query_string={"q": "WANG"}).get_json()["total"] == 0
    pollution = [("institution_id", institution(app, "M02").id), ("institution_id", institution(app, "M01").id)]
    assert m01.get("/api/imaging/studies", query_string=pollution).get_json()["total"] in (0, 2)
    assert {
        i["institution"]["code"] for i in m01.get("/api/imaging/studies", query_string=pollution).get_json()["items"]
    } <= {"M01"}
    before = len(audit_events(app, "security_alert"))
    r = m01.get(f"/api/imaging/studies/{archive['m02_study']}")
    assert (r.status_code, r.get_json()["code"]) == (404, "not_found")
    assert len(audit_events(app, "security_alert")) == before + 1
    assert m01.get("/api/imaging/studies/999999").status_code == 404

    # Issue 15: a central doctor sees the studies of their cases' patients only (tests/dicomweb/
    # test_qido_visibility.py); the central DICOM administrator keeps the institution-wide list (no pixel data).
    assert as_user(app, "report_l2").get("/api/imaging/studies").get_json()["total"] == 0
    doctor = as_user(app, "sys_admin")
    page = doctor.get("/api/imaging/studies", query_string={"page_size": 1000}).get_json()
    assert page["page_size"] == 100
    assert page["total"] == 3
    ct = doctor.get("/api/imaging/studies", query_string={"modality": "CT", "q": "ACC-A"}).get_json()
    assert [s["accession_number"] for s in ct["items"]] == ["ACC-A"]
    assert doctor.get("/api/imaging/studies", query_string={"q": "%"}).get_json()["total"] == 0  # literal match
    r = doctor.get("/api/imaging/studies", query_string={"sort": "id;select 1"})
    assert r.status_code == 400

    detail = doctor.get(f"/api/imaging/studies/{archive['m01_study']}").get_json()
    assert detail["patient_name"] == "LI^SI"
    assert detail["modalities"] == ["CT"]
    assert detail["source_aet"] == "MOD_M01"
    (series,) = detail["series"]
    (inst,) = series["instances"]
    assert inst["sop_instance_uid"] == str(dcmread(archive["a"]).SOPInstanceUID)
    assert inst["sop_class_name"] == "CT Image Storage"
    assert inst["is_sr"] is False
    assert len(audit_events(app, "dicom_study_viewed")) == 1


def test_dcm06_sr_text_is_readable_through_the_api(app: Flask, archive: dict[str, Any]) -> None:
    m01 = as_user(app, "requester", institution_code="M01")
    detail = m01.get(f"/api/imaging/studies/{archive['sr_study']}").get_json()
    inst = detail["series"][0]["instances"][0]
    assert inst["is_sr"] is True
    assert detail["modalities"] == ["SR"]
    doc = m01.get(f"/api/imaging/instances/{inst['id']}/sr").get_json()
    assert doc["title"] == "影像诊断报告"
    assert doc["completion_flag"] == "COMPLETE"
    findings, impression = doc["content"]
    assert (findings["concept"], findings["text"]) == ("影像所见", "右肺上叶见结节影，边界清。")
    assert findings["children"][0] == {
        "relationship": "HAS PROPERTIES",
        "value_type": "NUM",
        "concept": "结节大小",
        "text": "8 mm",
        "children": [],
    }
    assert impression["text"] == "右肺上叶结节，建议随访。"
    assert doc["text"].splitlines() == [
        "影像诊断报告",
        "  影像所见：右肺上叶见结节影，边界清。",
        "    结节大小：8 mm",
        "  诊断意见：右肺上叶结节，建议随访。",
    ]
    assert len(audit_events(app, "dicom_sr_viewed")) == 1
    # not an SR → 400; another hospital → 404
    ct_inst = m01.get(f"/api/imaging/studies/{archive['m01_study']}").get_json()["series"][0]["instances"][0]
    r = m01.get(f"/api/imaging/instances/{ct_inst['id']}/sr")
    assert (r.status_code, r.get_json()["code"]) == (400, "not_sr")
    m02 = as_user(app, "requester", institution_code="M02")
    assert m02.get(f"/api/imaging/instances/{inst['id']}/sr").status_code == 404


def test_dsec06_conflicts_are_listed_and_marked_resolved_with_a_note(
    app: Flask,
    archive: dict[str, Any],
    scp: scp_mod.Running,  # noqa: F811
    tmp_path: Path,
) -> None:
    ds = dcmread(archive["a"])
    ds.PatientComments = "changed content"
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed, enforce_file_format=True)
    assert store(scp.port, "MOD_M01", [changed]) == [0]
    assert count(app, InstanceConflict) == 1
    admin = as_user(app, "sys_admin")
    page = admin.get("/api/imaging/conflicts", query_string={"status": "open"}).get_json()
    (item,) = page["items"]
    assert item["sop_instance_uid"] == str(ds.SOPInstanceUID)
    assert item["status"] == "open"
    assert item["sha256"] != item["original_sha256"]
    assert item["patient_name"] == "LI^SI"
    assert as_user(app, "sys_admin", institution_code="M02").get("/api/imaging/conflicts").get_json()["total"] == 0
    m02 = as_user(app, "sys_admin", institution_code="M02")
    assert m02.post(f"/api/imaging/conflicts/{item['id']}/resolve", json={"note": "x"}).status_code == 404
    r = admin.post(f"/api/imaging/conflicts/{item['id']}/resolve", json={"note": ""})
    assert r.status_code == 400
    r = admin.post(f"/api/imaging/conflicts/{item['id']}/resolve", json={"note": "设备重发，保留原影像"})
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert (done["status"], done["note"], done["resolved_by"]) == (
        "resolved",
        "设备重发，保留原影像",
        admin.user.username,
    )
    r = admin.post(f"/api/imaging/conflicts/{item['id']}/resolve", json={"note": "again"})
    assert (r.status_code, r.get_json()["code"]) == (400, "already_resolved")
    assert admin.get("/api/imaging/conflicts", query_string={"status": "open"}).get_json()["total"] == 0
    assert len(audit_events(app, "dicom_conflict_resolved")) == 1


def test_img06_unmatched_studies_are_listed_per_institution(app: Flask, archive: dict[str, Any]) -> None:
    ids = {code: institution(app, code).id for code in ("M01", "M02")}  # before the write transaction below
    with app.app_context():  # image matching (IMG-06) queues studies without an exam; add any it did not
        s = uow.session()
        queued = set(s.execute(select(UnmatchedStudy.study_id)).scalars())
        for key, code in (("m01_study", "M01"), ("m02_study", "M02"), ("sr_study", "M01")):
            if archive[key] not in queued:
                s.add(
                    UnmatchedStudy(
                        institution_id=ids[code],
                        study_id=archive[key],
                        reason="no_exam",
                        details="无对应检查",
                    )
                )
        uow.commit()
    central = as_user(app, "sys_admin").get("/api/imaging/unmatched").get_json()
    assert central["total"] == 3
    assert {i["reason_name"] for i in central["items"]} == {"无对应检查申请"}
    m01 = as_user(app, "sys_admin", institution_code="M01").get("/api/imaging/unmatched").get_json()
    assert sorted(i["study"]["patient_id"] for i in m01["items"]) == ["P-A", "SR001"]
    assert as_user(app, "report_l1").get("/api/imaging/unmatched").status_code == 403


# --- SCU actions against real peers (DCM-03/04) ----------------------------------------------------------------
def _self_node(app: Flask, admin: Any, port: int, allow: list[str]) -> int:
    """telerad's own SCP registered as a remote node: we dial it, and it authorizes our calling AE TELERAD."""
    body = _node_body(app, aet="TELERAD", host="127.0.0.1", port=port, allow=allow)
    r = admin.post("/api/imaging/nodes", json=body)
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


def test_dcm03_echo_find_and_send_against_telerads_scp(
    app: Flask,
    archive: dict[str, Any],
    scp: scp_mod.Running,  # noqa: F811
) -> None:
    admin = as_user(app, "sys_admin")
    node_id = _self_node(app, admin, scp.port, ["echo", "store", "find"])
    r = admin.post(f"/api/imaging/nodes/{node_id}/echo")
    assert (r.status_code, r.get_json()["ok"], r.get_json()["status"]) == (200, True, 0), r.get_json()
    assert r.get_json()["message"] == "连通测试成功"

    # C-FIND: the SCP scopes the answer to the calling device's institution (M01), AC-08
    r = admin.post(f"/api/imaging/nodes/{node_id}/find", json={"level": "STUDY", "patient_name": "*"})
    found = r.get_json()
    assert found["ok"] is True, found
    assert sorted(i["patient_id"] for i in found["items"]) == ["P-A", "SR001"]
    r = admin.post(f"/api/imaging/nodes/{node_id}/find", json={"level": "STUDY", "accession_number": "ACC-A"})
    (match,) = r.get_json()["items"]
    assert match["study_instance_uid"] == str(dcmread(archive["a"]).StudyInstanceUID)
    assert match["modalities"] == ["CT"]
    r = admin.post(f"/api/imaging/nodes/{node_id}/find", json={"level": "STUDY", "patient_name": "*", "limit": 1})
    assert r.get_json()["truncated"] is True
    assert len(r.get_json()["items"]) == 1
    r = admin.post(f"/api/imaging/nodes/{node_id}/find", json={"level": "WARD"})
    assert r.status_code == 400

    # C-STORE M02's study to the node: it arrives as the node's (M01) data, a separate tenant-stamped copy
    r = admin.post(f"/api/imaging/studies/{archive['m02_study']}/send", json={"node_id": node_id})
    sent = r.get_json()
    assert (sent["ok"], sent["completed"], sent["failed"]) == (True, 1, 0), sent
    uid = str(dcmread(archive["b"]).SOPInstanceUID)
    assert count(app, Instance, Instance.sop_instance_uid == uid) == 2
    events = {e.event_type: e for e in audit_events(app, "dicom_scu_send") + audit_events(app, "dicom_scu_echo")}
    assert events["dicom_scu_send"].outcome == "success"
    assert events["dicom_scu_echo"].outcome == "success"
    assert len(audit_events(app, "dicom_scu_find")) == 3


def test_dcm03_failures_are_answered_in_chinese_and_audited(app: Flask, scp: scp_mod.Running) -> None:  # noqa: F811
    admin = as_user(app, "sys_admin")
    dead = admin.post("/api/imaging/nodes", json=_node_body(app, aet="DEAD", host="127.0.0.1", port=_free_port()))
    r = admin.post(f"/api/imaging/nodes/{dead.get_json()['id']}/echo")
    assert r.status_code == 200
    assert r.get_json()["ok"] is False
    assert "无法连接" in r.get_json()["message"]
    # the SCP knows our calling AE only for echo and store → C-FIND refused (DSEC-01 on the other side)
    unregistered = admin.post(
        "/api/imaging/nodes", json=_node_body(app, aet="TELERAD", host="127.0.0.1", port=scp.port)
    )
    r = admin.post(f"/api/imaging/nodes/{unregistered.get_json()['id']}/find", json={"patient_id": "P*"})
    body = r.get_json()
    assert (body["ok"], body["status"]) == (False, 0x0124), body
    assert "未授权" in body["message"]
    (failure,) = [e for e in audit_events(app, "dicom_scu_echo") if e.outcome == "failure"]
    assert failure.reason
    assert "无法连接" in failure.reason
    no_port = admin.post("/api/imaging/nodes", json=_node_body(app, aet="NOPORT", port=None)).get_json()
    r = admin.post(f"/api/imaging/nodes/{no_port['id']}/echo")
    assert (r.status_code, r.get_json()["code"]) == (400, "node_no_port")
    admin.patch(f"/api/imaging/nodes/{dead.get_json()['id']}", json={"enabled": False})
    r = admin.post(f"/api/imaging/nodes/{dead.get_json()['id']}/echo")
    assert (r.status_code, r.get_json()["code"]) == (400, "node_disabled")


class HospitalPacs:
    """A pynetdicom Q/R SCP holding a few data sets: a member hospital's own PACS (C-MOVE and C-GET SCP)."""

    def __init__(self, datasets: list[Dataset], move_port: int) -> None:
        from pynetdicom import AE, StoragePresentationContexts, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as Get
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as Move

        self.datasets = datasets
        self.move_port = move_port
        ae = AE(ae_title="PACS_M02")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
        ae.add_supported_context(Move)
        ae.add_supported_context(Get)
        for cx in StoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, scu_role=True, scp_role=True)
            ae.add_requested_context(cx.abstract_syntax)
        self.port = _free_port()
        handlers = [(evt.EVT_C_MOVE, self._move), (evt.EVT_C_GET, self._get)]
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=handlers)

    def _matches(self, identifier: Dataset) -> list[Dataset]:
        return [d for d in self.datasets if d.StudyInstanceUID == identifier.StudyInstanceUID]

    def _move(self, event: Any) -> Iterator[Any]:
        if event.move_destination != "TELERAD":
            yield None, None
            return
        yield "127.0.0.1", self.move_port
        found = self._matches(event.identifier)
        yield len(found)
        for ds in found:
            yield 0xFF00, ds

    def _get(self, event: Any) -> Iterator[Any]:
        found = self._matches(event.identifier)
        yield len(found)
        for ds in found:
            yield 0xFF00, ds

    def stop(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("method", ["move", "get"])
def test_dcm04_retrieve_from_a_hospital_pacs_into_our_archive(
    app: Flask,
    scp: scp_mod.Running,  # noqa: F811
    tmp_path: Path,
    method: str,
) -> None:
    study_uid = generate_uid()
    files = [_ct(tmp_path, f"s{i}.dcm", StudyInstanceUID=study_uid, PatientID="PACS-1") for i in range(3)]
    pacs = HospitalPacs([dcmread(f) for f in files], scp.port)
    lock = threading.Lock()
    try:
        admin = as_user(app, "sys_admin", institution_code="M02")
        body = _node_body(
            app,
            aet="PACS_M02",
            host="127.0.0.1",
            port=pacs.port,
            institution_id=institution(app, "M02").id,
            allow=["echo", "store"],
        )
        node_id = admin.post("/api/imaging/nodes", json=body).get_json()["id"]
        with lock:
            r = admin.post(
                f"/api/imaging/nodes/{node_id}/retrieve", json={"study_instance_uid": study_uid, "method": method}
            )
        result = r.get_json()
        assert (r.status_code, result["ok"]) == (200, True), result
        assert result["completed"] == 3
        assert result["failed"] == 0
    finally:
        pacs.stop()
    # every instance is in our archive, stamped with the device's institution (DSEC-03)
    m02 = institution(app, "M02").id
    assert count(app, Instance, Instance.institution_id == m02) == 3
    page = admin.get("/api/imaging/studies").get_json()
    assert [(s["study_instance_uid"], s["instance_count"]) for s in page["items"]] == [(study_uid, 3)]
    (event,) = audit_events(app, "dicom_scu_retrieve")
    assert event.outcome == "success"
    assert event.details["method"] == method
    r = admin.post(f"/api/imaging/nodes/{node_id}/retrieve", json={"study_instance_uid": "1.2.a"})
    assert r.status_code == 400
