"""Importing this module registers every service-task handler (composition roots import it once)."""

from engine.cases import completion  # noqa: F401 — registers reports.publish
from engine.notifications import triggers  # noqa: F401 — subscribes the notification triggers to audit events
