"""Imports every model module so `metadata` is complete (for Alembic and create_app)."""

from engine import audit  # noqa: F401
from engine.accounts import models as accounts_models  # noqa: F401
from engine.attachments import models as attachment_models  # noqa: F401
from engine.db import Base

metadata = Base.metadata
