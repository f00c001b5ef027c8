"""Imports every model module so `metadata` is complete (for Alembic and create_app)."""

from engine import audit  # noqa: F401
from engine.accounts import models as accounts_models  # noqa: F401
from engine.attachments import models as attachment_models  # noqa: F401
from engine.cases import models as case_models  # noqa: F401
from engine.db import Base
from engine.dicomweb import models as dicomweb_models  # noqa: F401
from engine.imaging import exam_models as imaging_exam_models  # noqa: F401
from engine.imaging import models as imaging_models  # noqa: F401
from engine.imaging import routing_models as imaging_routing_models  # noqa: F401
from engine.notifications import models as notification_models  # noqa: F401
from engine.oauth import models as oauth_models  # noqa: F401
from engine.reports import models as report_models  # noqa: F401
from engine.settings import models as settings_models  # noqa: F401
from engine.templates import models as template_models  # noqa: F401
from engine.viewer import models as viewer_models  # noqa: F401
from engine.workflow import models as workflow_models  # noqa: F401

metadata = Base.metadata
