"""Map DomainError and HTTP errors to `{"code", "message", "details"}` with Chinese messages."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from engine import uow
from engine.errors import DomainError

log = logging.getLogger("telerad.api")

HTTP_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthenticated", "请先登录"),
    403: ("forbidden", "没有权限执行此操作"),
    404: ("not_found", "对象不存在"),
    405: ("method_not_allowed", "不支持的请求方法"),
    409: ("conflict", "数据冲突，请刷新后重试"),
    413: ("too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
    422: ("validation_error", "提交的信息有误"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
    500: ("internal_error", "服务器内部错误，请联系管理员"),
    503: ("unavailable", "服务暂不可用，请稍后再试"),
}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Any:
    resp = jsonify({"code": code, "message": message, "details": details or {}})
    resp.status_code = status
    return resp


# marshmallow's English messages → Chinese (the UI shows them next to the field); unknown ones pass through.
_MESSAGES = {
    "Unknown field.": "不允许的字段",
    "Missing data for required field.": "必填项",
    "Field may not be null.": "不能为空",
    "Not a valid string.": "必须是文本",
    "Not a valid integer.": "必须是整数",
    "Not a valid number.": "必须是数字",
    "Not a valid boolean.": "必须是是/否",
    "Not a valid date.": "日期格式不正确",
    "Not a valid datetime.": "时间格式不正确",
    "Not a valid list.": "必须是列表",
    "Not a valid email address.": "邮箱格式不正确",
    "Invalid input type.": "类型不正确",
    "Shorter than minimum length 1.": "不能为空",
}
_PREFIXES = (
    ("Length must be", "长度不符合要求"),
    ("Longer than maximum length", "超出长度上限"),
    ("Must be one of", "取值不在允许范围内"),
    ("Must be greater than or equal to", "数值过小"),
    ("Must be less than or equal to", "数值过大"),
    ("String does not match expected pattern", "格式不正确"),
)


def _zh(message: Any) -> Any:
    if not isinstance(message, str):
        return message
    if message in _MESSAGES:
        return _MESSAGES[message]
    for prefix, text in _PREFIXES:
        if message.startswith(prefix):
            return text
    return message


def _flatten(errs: Any, prefix: str, out: dict[str, Any]) -> None:
    """Nested schema errors ({"patient": {"name": [...]}, "exams": {0: {...}}}) → "patient.name", "exams.0.x"."""
    for key, value in errs.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, f"{name}.", out)
        elif isinstance(value, list):
            out[name] = [_zh(m) for m in value]
        else:
            out[name] = _zh(value)


def _translate_validation(messages: Any) -> dict[str, Any]:
    """webargs puts errors under the location ("json", "form", "query"); flatten to dotted field → messages."""
    fields: dict[str, Any] = {}
    if isinstance(messages, dict):
        for _location, errs in messages.items():
            if isinstance(errs, dict):
                _flatten(errs, "", fields)
    return {"fields": fields}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(err: DomainError) -> Any:
        uow.rollback()
        return error_response(err.status, err.code, err.message, err.details)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        uow.rollback()
        status = err.code or 500
        code, message = HTTP_MESSAGES.get(status, ("error", "请求失败"))
        details: dict[str, Any] = {}
        data = getattr(err, "data", None)
        if status == 422 and isinstance(data, dict):
            status = 400
            details = _translate_validation(data.get("messages"))
        return error_response(status, code, message, details)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        # WEB-05: no traceback or path in the body; the log keeps it.
        log.exception("unhandled error")
        try:
            uow.rollback()
        except Exception:  # noqa: BLE001 — the original error is what matters
            log.exception("rollback failed")
        code, message = HTTP_MESSAGES[500]
        return error_response(500, code, message)
