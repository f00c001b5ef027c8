"""Importing this module registers every service-task handler and every hook of the case engine (composition roots
import it once)."""

from engine.cases import (
    clinical_queries,  # noqa: F401 — the 临床资料补充 kind and its service operations
    completion,  # noqa: F401 — registers cases.escalate
)
from engine.notifications import triggers  # noqa: F401 — subscribes the notification triggers to audit events
from engine.reports import review  # noqa: F401 — the report steps (engine/cases/hooks.py) and reports.publish
