"""Flask extensions bound to the one declarative base (ARCHITECTURE.md "Database access")."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy

from engine.db import Base

db = SQLAlchemy(model_class=Base)


def client_ip() -> str:
    # Only ProxyFix (configured with the number of trusted proxies) rewrites remote_addr (AUTH-04).
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=client_ip)
