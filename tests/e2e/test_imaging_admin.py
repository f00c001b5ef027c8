"""Browser end-to-end of the DICOM administration pages as the central hospital's 系统管理员 uses them: every page
from the sidebar, registering / editing / disabling a device with Chinese validation messages, a storage target
and a routing rule, then a real C-STORE through telerad's SCP from the device registered in the browser, seen in
影像检查, 未匹配检查, 影像冲突 and 转发队列.

REQ: IMG-02 (devices), DCM-02 / IMG-03 / IMG-07 (routing rules), IMG-06 (unmatched), IMG-08 (forward queue),
IMG-09 (storage targets), DSEC-06 (conflicts); AC-03 (menus follow permissions). Synthetic data only: pydicom's
bundled CT_small.dcm with fresh UIDs and made-up patient identifiers.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pydicom import dcmread
from sqlalchemy import update

from engine import uow
from engine.imaging import routing
from engine.imaging.routing_models import ForwardJob
from tests.dicom.conftest import fresh_copy, sample_file, scp, store, worker_applies_ingest_events  # noqa: F401
from tests.e2e.test_account_flow import _login
from tests.factories import make_user

# menu code → (route, page test id, a column header the page must show in Chinese)
PAGES = {
    "menu.imaging": ("/imaging/studies", "studies-page", "检查号"),
    "menu.dicom_nodes": ("/admin/dicom/nodes", "devices-page", "AE 名称"),
    "menu.dicom_conflicts": ("/admin/dicom/conflicts", "conflicts-page", "实例 UID"),
    "menu.dicom_unmatched": ("/admin/dicom/unmatched", "unmatched-page", "原因"),
    "menu.dicom_routing": ("/admin/dicom/routing", "routing-page", "规则名称"),
    "menu.dicom_forward": ("/admin/dicom/forward", "forward-page", "目标节点"),
    "menu.dicom_storage": ("/admin/dicom/storage", "storage-page", "存储路径"),
}
MENU_LABELS = {
    "menu.imaging": "影像检查",
    "menu.dicom_nodes": "设备管理",
    "menu.dicom_conflicts": "影像冲突",
    "menu.dicom_unmatched": "未匹配检查",
    "menu.dicom_routing": "路由规则",
    "menu.dicom_forward": "转发队列",
    "menu.dicom_storage": "存储管理",
}
# Chromium logs every 4xx answer as a console error; a rejected form submission is expected in the validation steps.
_HTTP_400 = re.compile(r"Failed to load resource: the server responded with a status of 400")


@pytest.fixture(autouse=True)
def _fresh_rule_cache() -> None:
    """The SCP's routing-rule cache is per process; each test has its own database."""
    routing.CACHE.invalidate()


def _admin(app, page) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(app, "sys_admin")
    _login(page, page.base_url, admin.username, admin.password, admin.totp_secret)
    # The login page's anonymous session probe (GET /api/auth/me → 401) is not part of these pages.
    page.js_errors.clear()


def _menu(page, code: str) -> None:  # type: ignore[no-untyped-def]
    route, testid, _header = PAGES[code]
    page.get_by_test_id(f"menu-{code}").click()
    page.wait_for_url(f"{page.base_url}{route}")
    page.get_by_test_id(testid).wait_for()


def _pick(page, popper: str, text: str) -> None:  # type: ignore[no-untyped-def]
    page.locator(f".{popper} .el-select-dropdown__item:visible", has_text=text).first.click()


def _toast(page, text: str) -> None:  # type: ignore[no-untyped-def]
    expect(page.locator(".el-message", has_text=text).first).to_be_visible()


def _assert_no_js_errors(page, *, allow_400: bool = False) -> None:  # type: ignore[no-untyped-def]
    errors = [e for e in page.js_errors if not (allow_400 and _HTTP_400.search(e))]
    assert not errors, errors


def _row(page, table: str, text: str):  # type: ignore[no-untyped-def]
    return page.get_by_test_id(table).locator("tr.el-table__row", has_text=text)


def _register_device(page, aet: str, host: str, institution: str, *, port: int | None = None) -> None:  # type: ignore[no-untyped-def]
    page.get_by_test_id("device-new").click()
    dialog = page.get_by_test_id("device-dialog")
    expect(dialog).to_be_visible()
    page.get_by_test_id("device-aet").fill(aet)
    page.get_by_test_id("device-host").fill(host)
    if port is not None:
        page.get_by_test_id("device-port").locator("input").fill(str(port))
    page.get_by_test_id("device-institution").click()
    _pick(page, "device-institution-popper", institution)
    page.get_by_test_id("device-save").click()
    _toast(page, "已保存")
    expect(dialog).to_be_hidden()
    expect(_row(page, "devices-table", aet)).to_have_count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sys_admin_opens_every_dicom_admin_page_from_the_menu(app, page) -> None:  # type: ignore[no-untyped-def]
    _admin(app, page)
    for code, label in MENU_LABELS.items():
        expect(page.get_by_test_id(f"menu-{code}")).to_have_text(label)
    for code, (_route, testid, header) in PAGES.items():
        _menu(page, code)
        expect(page.get_by_test_id(testid).locator(".el-table__header").first).to_contain_text(header)
    # The built-in archive is listed as the default target on a fresh system.
    builtin = page.get_by_test_id("targets-table").locator("tr.el-table__row").first
    expect(builtin).to_contain_text("内置")
    expect(builtin).to_contain_text("默认")
    # A fresh system has nothing queued or conflicting: the pages say so instead of crashing.
    _menu(page, "menu.dicom_forward")
    expect(page.get_by_test_id("forward-state-pending")).to_have_text("待发送（0）")
    expect(page.get_by_test_id("forward-table")).to_contain_text("暂无数据")
    _menu(page, "menu.dicom_conflicts")
    expect(page.get_by_test_id("conflicts-table")).to_contain_text("暂无数据")
    _assert_no_js_errors(page)


def test_register_validate_edit_and_disable_a_device(app, page) -> None:  # type: ignore[no-untyped-def]
    _admin(app, page)
    _menu(page, "menu.dicom_nodes")
    page.get_by_test_id("device-new").click()
    dialog = page.get_by_test_id("device-dialog")
    expect(dialog).to_contain_text("登记设备")
    for label in ("AE 名称", "主机地址", "端口", "所属机构", "允许的操作", "要求 TLS", "证书指纹"):
        expect(dialog).to_contain_text(label)

    # Required fields, checked before anything is sent.
    page.get_by_test_id("device-save").click()
    for msg in ("请输入 AE 名称", "请输入主机地址", "请选择所属机构"):
        expect(dialog.locator(".el-form-item__error", has_text=msg)).to_be_visible()

    # An AE title is at most 16 characters: the field stops at 16.
    aet = page.get_by_test_id("device-aet")
    aet.fill("ABCDEFGHIJKLMNOPQRST")
    expect(aet).to_have_value("ABCDEFGHIJKLMNOP")

    # A backslash (the DICOM value separator) is refused by the server, in Chinese.
    aet.fill("CT\\01")
    page.get_by_test_id("device-host").fill("10.20.30.40")
    page.get_by_test_id("device-institution").click()
    _pick(page, "device-institution-popper", "第一成员医院")
    page.get_by_test_id("device-save").click()
    expect(page.get_by_test_id("device-error")).to_contain_text("不能含反斜杠")
    expect(dialog.locator(".el-form-item__error", has_text="AE 名称须为 1–16 个 ASCII 字符")).to_be_visible()

    # So is a certificate fingerprint that is not SHA-256, next to its field.
    aet.fill("E2E_CT01")
    page.get_by_test_id("device-fingerprint").fill("AB:CD")
    page.get_by_test_id("device-save").click()
    expect(dialog.locator(".el-form-item__error", has_text="证书指纹须为 SHA-256")).to_be_visible()
    page.get_by_test_id("device-fingerprint").fill("")

    # A host with a space is refused next to the field.
    page.get_by_test_id("device-host").fill("10.20.30.40 ct")
    page.get_by_test_id("device-save").click()
    expect(dialog.locator(".el-form-item__error", has_text="主机地址无效")).to_be_visible()
    expect(page.get_by_test_id("device-error")).to_contain_text("主机地址无效")

    # A valid device: AE, host, port, the operations it may use.
    page.get_by_test_id("device-host").fill("10.20.30.40")
    page.get_by_test_id("device-port").locator("input").fill("104")
    page.get_by_test_id("device-allow-find").click()
    page.get_by_test_id("device-description").fill("一号 CT")
    page.get_by_test_id("device-save").click()
    _toast(page, "已保存")
    expect(dialog).to_be_hidden()
    row = _row(page, "devices-table", "E2E_CT01")
    expect(row).to_have_count(1)
    for text in ("10.20.30.40:104", "第一成员医院", "连通测试", "发送影像", "查询", "启用"):
        expect(row).to_contain_text(text)

    # The same AE on the same host cannot be registered twice.
    page.get_by_test_id("device-new").click()
    page.get_by_test_id("device-aet").fill("E2E_CT01")
    page.get_by_test_id("device-host").fill("10.20.30.40")
    page.get_by_test_id("device-institution").click()
    _pick(page, "device-institution-popper", "第一成员医院")
    page.get_by_test_id("device-save").click()
    expect(dialog.locator(".el-form-item__error", has_text="同一主机上的 AE 名称已存在")).to_be_visible()
    dialog.get_by_role("button", name="取消").click()
    expect(dialog).to_be_hidden()

    # Edit: a new port, no more C-FIND.
    row.get_by_test_id("device-edit").click()
    expect(dialog).to_contain_text("编辑设备")
    expect(page.get_by_test_id("device-aet")).to_have_value("E2E_CT01")
    page.get_by_test_id("device-port").locator("input").fill("11112")
    page.get_by_test_id("device-allow-find").click()
    page.get_by_test_id("device-save").click()
    _toast(page, "已保存")
    expect(row).to_contain_text("10.20.30.40:11112")
    expect(row).not_to_contain_text("查询")
    expect(row.get_by_test_id("device-echo")).to_be_enabled()

    # Disable: the state shows 停用, the echo test is no longer offered, the filter finds it.
    row.get_by_test_id("device-toggle").click()
    _toast(page, "设备已停用")
    expect(row.get_by_test_id("device-state")).to_have_text("停用")
    expect(row.get_by_test_id("device-toggle")).to_have_text("启用")
    expect(row.get_by_test_id("device-echo")).to_be_disabled()
    page.get_by_test_id("devices-enabled").click()
    page.locator(".el-select-dropdown__item:visible", has_text="启用").first.click()
    expect(page.get_by_test_id("devices-table")).to_contain_text("暂无数据")
    page.get_by_test_id("devices-enabled").click()
    page.locator(".el-select-dropdown__item:visible", has_text="停用").first.click()
    expect(_row(page, "devices-table", "E2E_CT01")).to_have_count(1)
    _assert_no_js_errors(page, allow_400=True)


def test_storage_target_and_routing_rule(app, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _admin(app, page)
    _menu(page, "menu.dicom_storage")
    page.get_by_test_id("target-new").click()
    dialog = page.get_by_test_id("target-dialog")
    page.get_by_test_id("target-save").click()
    for msg in ("请输入代码", "请输入绝对路径"):
        expect(dialog.locator(".el-form-item__error", has_text=msg)).to_be_visible()
    page.get_by_test_id("target-code").fill("bad code!")
    page.get_by_test_id("target-root").fill(str(tmp_path / "archive2"))
    page.get_by_test_id("target-save").click()
    expect(dialog.locator(".el-form-item__error", has_text="存储目标代码须为")).to_be_visible()
    page.get_by_test_id("target-code").fill("ARCHIVE2")
    page.get_by_test_id("target-name").fill("二号归档")
    page.get_by_test_id("target-save").click()
    _toast(page, "已保存")
    target = _row(page, "targets-table", "ARCHIVE2")
    expect(target).to_contain_text("二号归档")
    expect(target).to_contain_text(str(tmp_path / "archive2"))
    assert (tmp_path / "archive2").is_dir()
    target.get_by_test_id("target-set-default").click()
    _toast(page, "已设为默认存储目标")
    expect(target.get_by_test_id("target-default")).to_have_text("默认")
    expect(page.get_by_test_id("target-default")).to_have_count(1)

    _menu(page, "menu.dicom_routing")
    page.get_by_test_id("rule-new").click()
    dialog = page.get_by_test_id("rule-dialog")
    page.get_by_test_id("rule-save").click()
    expect(dialog.locator(".el-form-item__error", has_text="请输入规则名称")).to_be_visible()
    page.get_by_test_id("rule-name").fill("CT 归档到二号")
    modalities = page.get_by_test_id("rule-modalities")  # el-input-tag puts its attributes on the <input>
    modalities.fill("C/T")
    modalities.press("Enter")
    page.get_by_test_id("rule-target").click()
    _pick(page, "rule-target-popper", "二号归档")
    page.get_by_test_id("rule-save").click()
    expect(dialog.locator(".el-form-item__error", has_text="设备类型须为 1–16 位字母或数字")).to_be_visible()
    dialog.locator(".el-input-tag .el-tag", has_text="C/T").locator(".el-tag__close").click()
    modalities.fill("CT")
    modalities.press("Enter")
    page.get_by_test_id("rule-save").click()
    _toast(page, "已保存")
    rule = _row(page, "rules-table", "CT 归档到二号")
    expect(rule).to_contain_text("设备类型：CT")
    expect(rule).to_contain_text("存储目标：二号归档")
    expect(rule.get_by_test_id("rule-state")).to_have_text("启用")

    rule.get_by_test_id("rule-toggle").click()
    _toast(page, "规则已停用")
    expect(rule.get_by_test_id("rule-state")).to_have_text("停用")
    rule.get_by_test_id("rule-delete").click()
    box = page.locator(".el-message-box")
    expect(box).to_contain_text("确定删除规则“CT 归档到二号”吗？")
    box.get_by_role("button", name="确定").click()
    _toast(page, "规则已删除")
    expect(page.get_by_test_id("rules-table")).to_contain_text("暂无数据")
    _assert_no_js_errors(page, allow_400=True)


def test_cstore_from_a_registered_device_shows_in_studies_unmatched_conflicts_and_forward_queue(  # type: ignore[no-untyped-def]
    app,
    page,
    scp,  # noqa: F811
    tmp_path: Path,
) -> None:
    _admin(app, page)
    # The modality of member hospital M01, and a PACS at the centre to forward CT to (nothing listens there).
    _menu(page, "menu.dicom_nodes")
    _register_device(page, "E2E_MOD1", "127.0.0.1", "第一成员医院")
    _register_device(page, "E2E_PACS", "127.0.0.1", "医联体中心医院", port=_free_port())
    # 连通测试 (C-ECHO) from the device list: telerad's own SCP answers; the PACS does not.
    _register_device(page, "TELERAD", "127.0.0.1", "医联体中心医院", port=scp.port)
    own = _row(page, "devices-table", "TELERAD")
    own.get_by_test_id("device-echo").click()
    expect(own.get_by_test_id("device-echo-result")).to_contain_text("连通测试成功")
    expect(own.get_by_test_id("device-echo-result")).to_have_class(re.compile(r"el-tag--success"))
    pacs = _row(page, "devices-table", "E2E_PACS")
    pacs.get_by_test_id("device-echo").click()
    expect(pacs.get_by_test_id("device-echo-result")).to_contain_text("无法连接")
    expect(pacs.get_by_test_id("device-echo-result")).to_have_class(re.compile(r"el-tag--danger"))

    _menu(page, "menu.dicom_routing")
    page.get_by_test_id("rule-new").click()
    page.get_by_test_id("rule-name").fill("CT 转发中心 PACS")
    modalities = page.get_by_test_id("rule-modalities")  # el-input-tag puts its attributes on the <input>
    modalities.fill("ct")
    modalities.press("Enter")
    page.get_by_test_id("rule-forward-nodes").click()
    _pick(page, "rule-forward-popper", "E2E_PACS")
    page.keyboard.press("Escape")
    page.get_by_test_id("rule-save").click()
    _toast(page, "已保存")
    rule = _row(page, "rules-table", "CT 转发中心 PACS")
    expect(rule).to_contain_text("设备类型：CT")
    expect(rule).to_contain_text("转发到节点：E2E_PACS")

    # The modality sends one CT image, then the same SOP Instance UID with different content.
    ct = fresh_copy(
        sample_file("CT_small.dcm"),
        tmp_path / "ct.dcm",
        PatientName="E2E^TEST",
        PatientID="E2E-P1",
        AccessionNumber="E2E-ACC1",
    )
    assert store(scp.port, "E2E_MOD1", [ct]) == [0]
    ds = dcmread(ct)
    sop_uid = str(ds.SOPInstanceUID)
    ds.PatientComments = "changed content"
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed, enforce_file_format=True)
    assert store(scp.port, "E2E_MOD1", [changed]) == [0]
    worker_applies_ingest_events(app)  # the worker's job (telerad run runs it every 2 s): the exam match

    # 影像检查: search, open the detail.
    _menu(page, "menu.imaging")
    page.get_by_test_id("studies-q").fill("E2E-P1")
    page.get_by_test_id("studies-search").click()
    study = _row(page, "studies-table", "E2E-P1")
    expect(study).to_have_count(1)
    for text in ("E2E^TEST", "E2E-ACC1", "CT", "第一成员医院", "1 / 1"):
        expect(study).to_contain_text(text)
    study.get_by_test_id("study-open").click()
    drawer = page.get_by_test_id("study-drawer")
    expect(drawer).to_contain_text("检查详情")
    summary = page.get_by_test_id("study-summary")
    expect(summary).to_contain_text("E2E_MOD1")
    expect(summary).to_contain_text(str(ds.StudyInstanceUID))
    series = page.get_by_test_id("study-series")
    expect(series).to_contain_text("（CT，1 幅）")
    series.locator(".el-collapse-item__header").first.click()
    expect(page.get_by_test_id("series-instances")).to_contain_text("CT Image Storage")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # 未匹配检查: no exam was registered for this patient.
    _menu(page, "menu.dicom_unmatched")
    unmatched = _row(page, "unmatched-table", "E2E-P1")
    expect(unmatched).to_have_count(1)
    expect(unmatched.get_by_test_id("unmatched-reason")).to_have_text("无对应检查申请")
    expect(unmatched).to_contain_text("第一成员医院")

    # 影像冲突: the re-send is listed; marking it needs a note.
    _menu(page, "menu.dicom_conflicts")
    conflict = _row(page, "conflicts-table", sop_uid)
    expect(conflict).to_contain_text("E2E_MOD1")
    expect(conflict.get_by_test_id("conflict-state")).to_have_text("待处理")
    conflict.get_by_test_id("conflict-resolve").click()
    resolve = page.get_by_test_id("resolve-dialog")
    expect(resolve).to_contain_text("原影像保持不变")
    page.get_by_test_id("resolve-confirm").click()
    expect(resolve.locator(".el-form-item__error", has_text="请填写处理说明")).to_be_visible()
    page.get_by_test_id("resolve-note").fill("设备重发，保留原影像")
    page.get_by_test_id("resolve-confirm").click()
    _toast(page, "已标记为已处理")
    expect(page.get_by_test_id("conflicts-table")).to_contain_text("暂无数据")
    page.get_by_test_id("conflicts-status").get_by_text("已处理").click()
    expect(_row(page, "conflicts-table", sop_uid).get_by_test_id("conflict-state")).to_contain_text(
        "设备重发，保留原影像"
    )

    # 转发队列: the rule queued the CT for the PACS; a failed job can be retried.
    _menu(page, "menu.dicom_forward")
    job = _row(page, "forward-table", sop_uid)
    expect(job).to_have_count(1)
    expect(job).to_contain_text("E2E_PACS")
    expect(job.get_by_test_id("forward-job-state")).to_have_text("待发送")
    expect(page.get_by_test_id("forward-state-pending")).to_have_text("待发送（1）")
    with app.app_context(), uow.unit_of_work() as s:  # what the forward worker records after its last attempt
        s.execute(update(ForwardJob).values(state="failed", attempts=30, last_error="目标节点无法连接"))
    page.get_by_test_id("forward-refresh").click()
    expect(job.get_by_test_id("forward-job-state")).to_have_text("失败")
    expect(job.get_by_test_id("forward-job-error")).to_have_text("目标节点无法连接")
    job.get_by_test_id("forward-retry").click()
    _toast(page, "已重新加入队列")
    expect(job.get_by_test_id("forward-job-state")).to_have_text("待发送")
    expect(page.get_by_test_id("forward-state-failed")).to_have_text("失败（0）")
    _assert_no_js_errors(page, allow_400=True)
