"""Importing this module registers every service-task handler (composition roots import it once)."""

from engine.cases import (
    clinical_queries,  # noqa: F401 — the 临床资料补充 kind and its service operations
    completion,  # noqa: F401 — registers reports.publish
)
from engine.notifications import triggers  # noqa: F401 — subscribes the notification triggers to audit events
