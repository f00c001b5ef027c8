"""The registered setting keys: a Chinese name, a JSON Schema and a built-in default for each (issue 14).

A key is registered once, here or by the issue that needs it (the viewer and the report editor use the keys below);
an unknown key is refused everywhere. Values are small JSON documents validated by their key's schema.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

# Keep the ids a user can store short and plain: they name columns, windows and presets, never paths or code.
_ID = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"}


@dataclass(frozen=True)
class SettingKey:
    key: str
    name: str  # Chinese, shown in the admin UI
    schema: dict[str, Any]
    default: Any

    def validator(self) -> Draft202012Validator:
        return _VALIDATORS[self.key]

    def builtin(self) -> Any:
        """A copy of the built-in default (callers may mutate what they get)."""
        return copy.deepcopy(self.default)


_KEYS: dict[str, SettingKey] = {}
_VALIDATORS: dict[str, Draft202012Validator] = {}


def register(key: str, name: str, schema: dict[str, Any], default: Any) -> SettingKey:
    """Register a setting key.

    Raises:
        ValueError: the key is registered already, or its built-in default does not satisfy its own schema.
    """
    if key in _KEYS:
        raise ValueError(f"setting key {key!r} is registered twice")
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    errors = list(validator.iter_errors(default))
    if errors:
        raise ValueError(f"built-in default of {key!r} fails its schema: {errors[0].message}")
    _VALIDATORS[key] = validator
    _KEYS[key] = SettingKey(key, name, schema, copy.deepcopy(default))
    return _KEYS[key]


def get(key: str) -> SettingKey | None:
    return _KEYS.get(key)


def all_keys() -> list[SettingKey]:
    return list(_KEYS.values())


# ---- list columns: one key per list id; the value is the columns in display order --------------------------------
LIST_IDS = {"tasks": "我的任务列表", "pool": "抢单池列表", "cases": "远程诊断申请列表"}
LIST_COLUMNS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 40,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "shown"],
        "properties": {
            "id": _ID,
            "shown": {"type": "boolean"},
            "width": {"type": ["integer", "null"], "minimum": 40, "maximum": 1200},
        },
    },
}
for _list_id, _list_name in LIST_IDS.items():
    # [] = the list's own columns in their own order; saved columns come first in their saved order, columns the
    # list has gained since are appended, shown (web/src/composables/useListColumns.ts).
    register(f"list.{_list_id}.columns", f"{_list_name}的列（显示、顺序、宽度）", LIST_COLUMNS_SCHEMA, [])

# ---- landing page after login: a menu code the user holds, or null for the system's choice -------------------------
register(
    "landing_page",
    "登录后首页",
    {"type": ["string", "null"], "pattern": "^menu\\.[a-z_]{1,40}$"},
    None,
)

# ---- viewer: window presets and the four corners' text -------------------------------------------------------------
register(
    "viewer.presets",
    "阅片窗宽窗位预设",
    {
        "type": "array",
        "maxItems": 20,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "name", "window_center", "window_width"],
            "properties": {
                "id": _ID,
                "name": {"type": "string", "minLength": 1, "maxLength": 32},
                "modality": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
                "window_center": {"type": "number", "minimum": -32768, "maximum": 65535},
                "window_width": {"type": "number", "exclusiveMinimum": 0, "maximum": 65535},
                "key": {"type": ["string", "null"], "pattern": "^[1-9]$"},
            },
        },
    },
    [
        {"id": "lung", "name": "肺窗", "modality": "CT", "window_center": -600, "window_width": 1500, "key": "1"},
        {"id": "mediastinum", "name": "纵隔窗", "modality": "CT", "window_center": 40, "window_width": 400, "key": "2"},
        {"id": "bone", "name": "骨窗", "modality": "CT", "window_center": 400, "window_width": 1800, "key": "3"},
        {"id": "brain", "name": "脑窗", "modality": "CT", "window_center": 40, "window_width": 80, "key": "4"},
        {"id": "abdomen", "name": "腹窗", "modality": "CT", "window_center": 50, "window_width": 350, "key": "5"},
    ],
)
CORNER_ITEMS = (
    "patient_name",
    "patient_id",
    "sex_age",
    "study_date",
    "study_description",
    "series_description",
    "modality",
    "institution",
    "series_number",
    "instance_number",
    "slice_location",
    "slice_thickness",
    "window",
    "zoom",
)
_CORNER = {"type": "array", "maxItems": 8, "uniqueItems": True, "items": {"enum": list(CORNER_ITEMS)}}
register(
    "viewer.corner_text",
    "阅片四角信息",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["top_left", "top_right", "bottom_left", "bottom_right"],
        "properties": {"top_left": _CORNER, "top_right": _CORNER, "bottom_left": _CORNER, "bottom_right": _CORNER},
    },
    {
        "top_left": ["patient_name", "patient_id", "sex_age"],
        "top_right": ["institution", "study_date", "study_description"],
        "bottom_left": ["series_number", "instance_number", "slice_location", "slice_thickness"],
        "bottom_right": ["window", "zoom"],
    },
)

# VIEW-13 (issue 16): corner text per modality — a modality's own four corners, else "viewer.corner_text".
register(
    "viewer.corner_text_by_modality",
    "阅片四角信息（按设备类型）",
    {
        "type": "object",
        "maxProperties": 30,
        "propertyNames": {"pattern": "^[A-Z]{2}$"},
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["top_left", "top_right", "bottom_left", "bottom_right"],
            "properties": {"top_left": _CORNER, "top_right": _CORNER, "bottom_left": _CORNER, "bottom_right": _CORNER},
        },
    },
    {},
)

# Issue 16: how the viewer asks for frames stored JPEG lossless / JPEG-LS / JPEG 2000 — "lan": uncompressed, decoded
# by the server (fast on a LAN); "wan": as stored (fewest bytes); "auto": lan when the server is on a local or
# private address (web/src/viewer/core/frameSyntax.ts).
register(
    "viewer.bandwidth_mode",
    "阅片带宽模式（局域网：服务器解压；广域网：按存储格式传输）",
    {"enum": ["auto", "lan", "wan"]},
    "auto",
)

# ---- window positions (multi-monitor reading): window id -> rectangle ----------------------------------------------
_COORD = {"type": "integer", "minimum": -100000, "maximum": 100000}
register(
    "window.positions",
    "窗口位置",
    {
        "type": "object",
        "maxProperties": 20,
        "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,39}$"},
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["x", "y", "width", "height"],
            "properties": {
                "x": _COORD,
                "y": _COORD,
                "width": {"type": "integer", "minimum": 100, "maximum": 100000},
                "height": {"type": "integer", "minimum": 100, "maximum": 100000},
                "screen": {"type": ["integer", "null"], "minimum": 0, "maximum": 16},
            },
        },
    },
    {},
)

# ---- report editor ---------------------------------------------------------------------------------------------------
FONT_MODES = ("standard", "large", "extra_large")
register("report_editor.font_mode", "报告编辑器字号", {"enum": list(FONT_MODES)}, "standard")

# ---- the report beside the images (REQ: RPT-12, UX R23): 报告 | 报告+影像 and the editor's share of the split ------
register(
    "report_editor.viewer_layout",
    "报告页布局（报告 / 报告+影像）",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["mode", "split"],
        "properties": {
            "mode": {"enum": ["report", "split"]},
            "split": {"type": "integer", "minimum": 25, "maximum": 75},
        },
    },
    {"mode": "report", "split": 45},
)

# ---- the template panel beside the report editor (issue 17; UX R5): folded to a strip so the editor can be wide ------
register(
    "report_editor.template_panel",
    "报告模板面板（展开 / 收起）",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["collapsed"],
        "properties": {"collapsed": {"type": "boolean"}},
    },
    {"collapsed": False},
)
