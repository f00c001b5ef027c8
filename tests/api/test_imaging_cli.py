"""`telerad dicom echo|find|retrieve|send` (REQ: DCM-03/04) as real subprocesses against telerad's SCP and the
per-test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flask import Flask
from pydicom import dcmread

from dicom import scp as scp_mod
from engine import config, uow
from engine.actor import Actor
from engine.imaging import services
from engine.imaging.models import Instance
from tests.conftest import TEST_SECRET
from tests.dicom.conftest import add_node, count, fresh_copy, sample_file, scp  # noqa: F401

TELERAD = Path(sys.executable).with_name("telerad")


def _run(settings: config.Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TELERAD_MODE": "test",
        "TELERAD_INSTANCE_DIR": str(settings.instance_dir),
        "TELERAD_STORAGE_DIR": str(settings.storage_dir),
        "TELERAD_DATABASE_URL": settings.database_url,
        "TELERAD_SECRET_KEY": TEST_SECRET,
    }
    return subprocess.run(
        [str(TELERAD), "dicom", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_dcm03_cli_echo_send_find(
    app: Flask,
    settings: config.Settings,
    scp: scp_mod.Running,  # noqa: F811
    tmp_path: Path,
) -> None:
    peer = ["--aet", "TELERAD", "--host", "127.0.0.1", "--port", str(scp.port)]
    refused = _run(settings, "echo", *peer)
    assert refused.returncode == 1  # our AE is not registered at the SCP yet (DSEC-01)
    # telerad's SCP registered as a node of M01: it is the send target and authorizes our calling AE
    with app.app_context(), uow.unit_of_work():
        services.create_node(
            Actor.system("test"),
            aet="TELERAD",
            host="127.0.0.1",
            port=scp.port,
            institution_code="M01",
            allow="echo,store,find",
        )
    ok = _run(settings, "echo", *peer)
    assert ok.returncode == 0, ok.stderr
    assert "连通测试成功" in ok.stdout

    files = [fresh_copy(sample_file("CT_small.dcm"), tmp_path / f"{i}.dcm", PatientID="CLI-1") for i in range(2)]
    sent = _run(settings, "send", *map(str, files), "--node", "TELERAD")
    assert sent.returncode == 0, sent.stderr
    assert "发送完成：成功 2 个实例" in sent.stdout
    assert count(app, Instance) == 2

    found = _run(settings, "find", *peer, "-k", "PatientID=CLI-1")
    assert found.returncode == 0, found.stderr
    header, *rows = found.stdout.strip().splitlines()[:-1]
    assert header.split("\t")[0] == "patient_id"
    study_uids = {str(dcmread(f).StudyInstanceUID) for f in files}
    assert {r.split("\t")[4] for r in rows} == study_uids
    bad = _run(settings, "find", *peer, "-k", "PatientID")
    assert bad.returncode == 2
    unknown = _run(settings, "send", str(files[0]), "--node", "NOBODY")
    assert unknown.returncode == 1
    assert "未找到" in unknown.stderr
