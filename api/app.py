"""create_app(): the composition root of the web process (and of CLI, worker and DICOM processes)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, abort, send_from_directory
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from api import security
from api.errors import register_error_handlers
from api.extensions import db, limiter, ratelimit_storage_uri
from api.schemas import ErrorSchema, IdConverter, id_converter_schema
from engine import audit as _audit  # noqa: F401
from engine import config, uow
from engine import handlers as _handlers  # noqa: F401 — registers service-task handlers
from engine import models as _models  # noqa: F401

# Models must be imported so the metadata is complete.
from engine.accounts import models as _accounts_models  # noqa: F401
from engine.attachments import models as _attachment_models  # noqa: F401
from engine.config import Settings
from engine.db import tune_engine


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the Flask app for `settings` (default: from the environment).

    Raises:
        engine.config.ConfigError: unsafe production configuration (the process must exit non-zero).
    """
    settings = settings or config.load_settings()
    for key, value in overrides.items():
        setattr(settings, key, value)
    config.set_current(settings)
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    settings.storage_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, static_folder=None)
    # Every `<int:...>` route parses its id here, before any route is added: 1..2^31−1, else 404 (issue 11 §3).
    app.url_map.converters["int"] = IdConverter
    app.config.update(
        SECRET_KEY=settings.secret_key,
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 512 * 1024,  # UP-02: 10 MB files plus form overhead
        MAX_FORM_PARTS=100,  # WEB-06
        # Text fields stay small, but werkzeug also applies this to its multipart decoder's buffer, which holds a
        # 64 KiB chunk plus the tail of the previous one when that might start a boundary: at exactly 64 KiB,
        # most photos over ~500 KB were refused with 413 (issue 11 §4). 128 KiB leaves room for the tail.
        MAX_FORM_MEMORY_SIZE=128 * 1024,
        API_TITLE="telerad 远程影像诊断平台 API",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        RATELIMIT_STORAGE_URI=ratelimit_storage_uri(settings.ratelimit_storage_uri),
        RATELIMIT_DEFAULT=settings.extra.get("api_rate_limit", "600 per minute"),
        RATELIMIT_HEADERS_ENABLED=False,
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if settings.trusted_proxies > 0:
        app.wsgi_app = ProxyFix(
            app.wsgi_app,
            x_for=settings.trusted_proxies,  # type: ignore[method-assign]
            x_proto=settings.trusted_proxies,
            x_host=0,
        )
    app.extensions["telerad_settings"] = settings

    db.init_app(app)
    with app.app_context():
        tune_engine(db.engine)
    uow.configure(lambda: db.session)
    limiter.init_app(app)
    api = _Api(app)
    api.register_converter(IdConverter, id_converter_schema)
    register_error_handlers(app)
    security.install(app)
    _register_blueprints(app, api)
    _register_spa(app, settings.web_dist)
    if settings.production:
        with app.app_context():
            _refuse_demo_accounts()
    logging.getLogger("telerad").setLevel(logging.INFO)
    return app


class _Api(Api):
    """flask-smorest's Api, with two changes.

    The OpenAPI document describes the error body api/errors.py really sends ({"code", "message", "details"}), not
    flask-smorest's default one (integer code, status, errors): schemathesis checks responses against it.

    Each blueprint's part of the document is built when the document is first read (`spec`: GET
    /api/openapi.json, the schemathesis and access-control tests), not when the blueprint is registered: building
    it was ~60 % of create_app (~50 of 85 ms), paid by every process start and by each of the ~1,800 apps a `make
    test` run creates (issue 13). The routes themselves are registered at once, as before. flask-smorest is pinned
    (pyproject.toml); this relies on its `register_views_in_doc` and on `spec` being a plain attribute.
    """

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._undocumented: list[tuple[Any, str, Any]] = []
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]  # an attribute in flask-smorest; a property here, to build the doc lazily
    def spec(self) -> Any:
        pending = self.__dict__.get("_undocumented")
        if pending:
            self._undocumented = []
            for blp, name, parameters in pending:
                blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
                self._spec.tag({"name": name, "description": blp.description})
        return self.__dict__.get("_spec")

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": 10, "max_overflow": 10}  # liveness: engine.db.ping_when_idle, not pool_pre_ping


def _register_blueprints(app: Flask, api: Api) -> None:
    from api.accounts.views import blp as accounts_blp
    from api.audit.views import blp as audit_blp
    from api.auth.views import blp as auth_blp
    from api.cases.turnaround_views import blp as turnaround_blp
    from api.cases.views import blp as cases_blp
    from api.dicomweb import blp as dicomweb_blp
    from api.dicomweb import limits as _dicomweb_limits  # noqa: F401  (the /dicomweb rate limit)
    from api.dicomweb import pixeldata as _dicomweb_pixeldata  # noqa: F401  (WADO-RS series pixel data)
    from api.dicomweb import qido as _dicomweb_qido  # noqa: F401  (QIDO-RS routes on the blueprint)
    from api.dicomweb import stow as _dicomweb_stow  # noqa: F401 (registers STOW-RS on the dicomweb blueprint)
    from api.dicomweb import wado as _dicomweb_wado  # noqa: F401  (WADO-RS routes on the blueprint)
    from api.dicomweb import wado_uri as _dicomweb_wado_uri  # noqa: F401  (WADO-URI)
    from api.health import blp as health_blp
    from api.imaging.node_views import blp as imaging_nodes_blp
    from api.imaging.routing_views import blp as imaging_routing_blp
    from api.imaging.scu_views import blp as imaging_scu_blp
    from api.imaging.upload_views import blp as imaging_upload_blp
    from api.imaging.views import blp as imaging_blp
    from api.notifications.views import blp as notifications_blp
    from api.oauth import server as oauth_server
    from api.oauth.admin_views import blp as oauth_clients_blp
    from api.oauth.views import blp as oauth_blp
    from api.processes.views import blp as processes_blp
    from api.reports.views import blp as reports_blp
    from api.settings.views import blp as settings_blp
    from api.tasks.views import blp as tasks_blp
    from api.templates.views import blp as templates_blp
    from api.viewer.views import blp as viewer_blp

    for blp in (health_blp, auth_blp, accounts_blp, audit_blp, cases_blp, tasks_blp, processes_blp, imaging_blp):
        api.register_blueprint(blp)
    api.register_blueprint(reports_blp)  # the report routes (issue 17): lock, drafts, revisions, print, correct
    api.register_blueprint(turnaround_blp)  # 报告时限规则 (issue 17, UX.md R3)
    api.register_blueprint(imaging_nodes_blp)  # IMG-02: devices and remote nodes
    api.register_blueprint(imaging_routing_blp)
    api.register_blueprint(imaging_scu_blp)
    api.register_blueprint(imaging_upload_blp)  # REG-16: studies of an exam, linking an uploaded study
    api.register_blueprint(settings_blp)
    api.register_blueprint(notifications_blp)
    api.register_blueprint(oauth_clients_blp)
    api.register_blueprint(viewer_blp)
    api.register_blueprint(templates_blp)  # report templates and phrases (issue 17)
    security.mark_public(app, "api-docs.openapi_json")
    app.register_blueprint(dicomweb_blp)  # plain Flask: DICOM JSON and multipart, not in the OpenAPI document
    oauth_server.build(app)
    app.register_blueprint(oauth_blp)  # plain Flask: OAuth's form-encoded requests and RFC 6749 error bodies


def _register_spa(app: Flask, dist: Path) -> None:
    """Serve the built Vue app; every non-API path answers index.html (history-mode routing)."""

    @app.route("/assets/<path:filename>", endpoint="spa_assets")
    @security.requires(security.PUBLIC)
    def assets(filename: str) -> Any:
        resp = send_from_directory(dist / "assets", filename, max_age=31536000)
        if filename.endswith(".wasm"):
            resp.mimetype = "application/wasm"
        return resp

    @app.route("/", defaults={"path": ""}, endpoint="spa")
    @app.route("/<path:path>", endpoint="spa")
    @security.requires(security.PUBLIC)
    def index(path: str) -> Any:
        if security.guarded(f"/{path}"):
            abort(404)  # JSON 404 under /api, /dicomweb and /oauth: never the SPA's index.html
        top = dist / path
        if path and "/" not in path and top.is_file():
            return send_from_directory(dist, path)
        if not (dist / "index.html").exists():
            return (
                "<!doctype html><meta charset=utf-8><title>telerad</title><p>前端尚未构建：请运行 make web</p>"
            ), 503
        resp = send_from_directory(dist, "index.html", max_age=0)
        resp.headers["Cache-Control"] = "no-cache"
        return resp


def _refuse_demo_accounts() -> None:
    """Production must not start while demo accounts exist (ARCHITECTURE.md "Modes", SESS-03)."""
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from engine.accounts.models import User

    try:
        demo = db.session.execute(select(User.id).where(User.is_demo.is_(True)).limit(1)).first()
    except (OperationalError, ProgrammingError):
        db.session.rollback()
        return  # not migrated yet; `telerad db upgrade` comes first
    finally:
        db.session.remove()
    if demo:
        raise config.ConfigError("demo accounts exist; production refuses to start (remove them or use demo mode)")
