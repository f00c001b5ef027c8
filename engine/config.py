"""Runtime configuration read from TELERAD_* environment variables (see README "配置")."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("demo", "production", "test")
MIN_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """Raised when the configuration is unsafe or incomplete; the process must not start."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


STOW_MAX_PARTS_CEILING = 20_000  # TELERAD_STOW_MAX_PARTS at most (a larger series goes in several requests)


def _int(env: dict[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw, 0)  # 0x0111 for DICOM status codes, plain decimals elsewhere
    except ValueError as exc:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from exc


def _float(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from exc


def default_dicom_processes(cpus: int | None = None) -> int:
    """DICOM receiver processes when TELERAD_DICOM_PROCESSES is not set: 2 on one CPU, 4 on 2–8 CPUs, then half the
    CPUs this process may run on, at most 8.

    A modality sends one C-STORE at a time per association and waits for its answer, and telerad answers only once
    the file is synced and its row committed: a receiver is bound by that latency (file sync, the database's commit
    round trip), not by CPU. The receivers share one listening socket and the least-loaded one accepts
    (dicom/shared_limits.py AcceptBalance), so with 4 receivers each of four concurrent modalities has one to itself
    and no association waits behind another's commit. Measured on the 2-core benchmark machine, 4 associations, 10 %
    SR (bench/bench_dicom.py small_4, telerad/Orthanc per round, 3 rounds, other work stopped): PostgreSQL
    0.77–0.80 with 1 receiver, 0.89–1.00 with 2, 0.98–1.18 with 4; SQLite 0.94–1.03 with 2, 1.02–1.13 with 4 (its
    commits pass one write gate, dicom/writegate.py, so more receivers wait there instead). One association (small_1,
    large_1) uses one receiver whatever the count. An idle receiver costs memory only (forked from one template
    process, they share the loaded code: the supervisor and 4 receivers ≈ 175 MB PSS).
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 2 if cpus <= 1 else min(8, max(4, cpus // 2))


@dataclass
class Settings:
    """Every setting the processes read. Built once per process by `load_settings`."""

    mode: str = "demo"
    debug: bool = False
    instance_dir: Path = Path("instance")
    storage_dir: Path = Path("instance/storage")
    database_url: str = ""
    secret_key: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    dicom_port: int = 11112
    dicom_aet: str = "TELERAD"
    # DICOM SCP (REQ: DSEC-07): limits and timeouts are set deliberately, never pynetdicom's defaults.
    dicom_host: str = "0.0.0.0"  # noqa: S104 - modalities connect from the hospital network; TLS/VPN per CRY-02
    dicom_tls_port: int = 0  # 0 = no TLS listener
    # DICOM TLS (REQ: CRY-02, CLOUD-03): server certificate + key, and the CA whose client certificates are accepted.
    dicom_tls_cert: str = ""
    dicom_tls_key: str = ""
    dicom_tls_ca: str = ""
    dicom_tls_crl: str = ""  # PEM CRL(s) of the hospital CA: revoked client certificates fail the handshake
    # Source networks allowed on the plain (non-TLS) port, comma-separated CIDRs; empty = any (CRY-02: restrict the
    # plain port to localhost/VPN, e.g. "127.0.0.0/8,::1/128,10.8.0.0/16").
    dicom_plain_networks: str = ""
    dicom_max_associations: int = 60
    dicom_max_associations_per_ae: int = 8
    dicom_acse_timeout: float = 30.0
    dicom_dimse_timeout: float = 60.0
    dicom_network_timeout: float = 60.0
    dicom_connection_timeout: float = 30.0
    dicom_max_pdu: int = 262144
    dicom_processes: int = 1
    dicom_disk_full_percent: float = 95.0  # REL-01: at or above this usage C-STORE answers 0xA700
    dicom_conflict_status: int = 0x0000  # DSEC-06: status for a same-UID, different-content resend (kept aside)
    dicom_find_limit: int = 1000  # C-FIND result cap per query (C1: universal matches are capped)
    # DICOMweb (issue 15): requests per user or OAuth client (not per IP), sized so a viewer loads a 1,000-frame
    # study (one request per frame, plus metadata) well within the minute; QIDO result cap (DSEC-11: ≤ 1,000).
    dicomweb_rate_limit: str = "6000 per minute"
    qido_max_results: int = 1000
    dicom_orphan_age_min: int = 60  # the sweeper removes store files without an index row older than this
    trusted_proxies: int = 0
    ratelimit_storage_uri: str = "memory://"
    # Login throttling by source address (REQ: AUTH-04; api/auth/throttle.py). Failures are counted per (address,
    # username) and per address, so one typist behind a hospital's NAT address no longer locks out the whole hospital;
    # trusted NAT addresses (comma-separated CIDRs) get a higher per-address ceiling.
    login_user_ip_limit: str = "10 per 5 minutes"
    login_ip_limit: str = "100 per 5 minutes"
    login_trusted_networks: str = ""
    login_trusted_ip_limit: str = "1000 per 5 minutes"
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    idle_timeout_min: int = 30
    admin_idle_timeout_min: int = 15
    absolute_timeout_hours: int = 12
    password_max_age_days: int = 90
    password_history: int = 5
    lockout_threshold: int = 5
    lockout_window_min: int = 15
    lockout_duration_min: int = 30
    inactive_disable_days: int = 90
    audit_retention_days: int = 180
    # How often the worker looks for due BPMN timers (REQ: WF-06): a timer fires at most this long after it falls due.
    timer_poll_seconds: int = 15
    max_upload_bytes: int = 10 * 1024 * 1024
    # Lifetime of OAuth 2.0 bearer access tokens (issue 15; REQ: DSEC-11), seconds: 60 .. 86400.
    oauth_token_lifetime_s: int = 3600
    # WADO-RS frame requests (issue 16): how long a process reuses one caller's study resolution and pixel-access
    # decision (engine/dicomweb/decisions.py), seconds, 0 .. 5 (0: off). Revoked access (case handed back, role
    # removed) ends at most this late; logout and session expiry end it at once (the session is checked per request).
    dicomweb_decision_ttl_s: float = 5.0
    # WADO-RS frames decoded for a client that asked for uncompressed data (issue 16): how many MiB of decoded frames
    # a process keeps for the next request (engine/dicomweb/frame_cache.py), 0 .. 4096 (0: off).
    dicomweb_frame_cache_mb: int = 256
    # STOW-RS (issue 15): its own body cap instead of the app-wide limit above; over it the request answers 413.
    stow_max_bytes: int = 4 * 1024 * 1024 * 1024
    # STOW-RS parts (instances) per request (REQ: WEB-06 caps ordinary multipart forms at 100 parts; STOW must take a
    # whole study): a 2,000-slice CT plus its localisers, reformats and dose reports (+25 %). Over it: 413.
    stow_max_parts: int = 2500
    max_json_bytes: int = 1024 * 1024
    max_image_pixels: int = 25_000_000
    web_dist: Path = Path("web/dist")
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def session_cookie_name(self) -> str:
        # REQ: SESS-03 — the __Host- prefix forces Secure, Path=/ and no Domain.
        return "__Host-telerad_session" if self.production else "telerad_session"


def _instance_secret(instance_dir: Path) -> str:
    """Demo/test mode: a random secret generated once and kept under instance/."""
    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def parse_networks(value: str, key: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated CIDRs or single addresses (`203.0.113.7`, `10.8.0.0/16`, `2001:db8::/48`).

    Raises:
        ConfigError: an entry is neither.
    """
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{key} has an invalid address or network: {item!r}") from exc
    return nets


def address_in(ip: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether a source address lies in one of `networks` (an IPv4-mapped IPv6 address counts as its IPv4 one)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def _check_login_throttle(s: Settings) -> None:
    """Refuse to start with a login throttle that would fail at the first login instead (REQ: AUTH-04)."""
    from limits import parse  # the rate-limit notation flask-limiter uses ("10 per 5 minutes")

    for key, value in (
        ("TELERAD_LOGIN_USER_IP_LIMIT", s.login_user_ip_limit),
        ("TELERAD_LOGIN_IP_LIMIT", s.login_ip_limit),
        ("TELERAD_LOGIN_TRUSTED_IP_LIMIT", s.login_trusted_ip_limit),
        ("TELERAD_DICOMWEB_RATE_LIMIT", s.dicomweb_rate_limit),
    ):
        try:
            ok = parse(value).amount >= 1
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"{key} must be a rate limit such as '100 per 5 minutes', got {value!r}")
    parse_networks(s.login_trusted_networks, "TELERAD_LOGIN_TRUSTED_NETWORKS")


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from the environment and validate them.

    Raises:
        ConfigError: the mode is unknown, or production is configured unsafely
            (DEBUG on, missing or short secret) — REQ: SESS-03, WEB-05.
    """
    env = dict(os.environ if env is None else env)
    mode = env.get("TELERAD_MODE", "demo").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"TELERAD_MODE must be one of {MODES}, got {mode!r}")
    instance_dir = Path(env.get("TELERAD_INSTANCE_DIR", "instance")).resolve()
    s = Settings(mode=mode, instance_dir=instance_dir)
    s.debug = _bool(env.get("TELERAD_DEBUG"))
    s.storage_dir = Path(env.get("TELERAD_STORAGE_DIR", str(instance_dir / "storage"))).resolve()
    s.database_url = env.get("TELERAD_DATABASE_URL", f"sqlite:///{instance_dir / 'telerad.db'}")
    s.http_host = env.get("TELERAD_HTTP_HOST", "127.0.0.1")
    s.http_port = _int(env, "TELERAD_HTTP_PORT", 8080)
    s.dicom_port = _int(env, "TELERAD_DICOM_PORT", 11112)
    s.dicom_aet = env.get("TELERAD_DICOM_AET", "TELERAD")
    s.dicom_host = env.get("TELERAD_DICOM_HOST", s.dicom_host)
    s.dicom_tls_port = _int(env, "TELERAD_DICOM_TLS_PORT", s.dicom_tls_port)
    s.dicom_tls_cert = env.get("TELERAD_DICOM_TLS_CERT", s.dicom_tls_cert)
    s.dicom_tls_key = env.get("TELERAD_DICOM_TLS_KEY", s.dicom_tls_key)
    s.dicom_tls_ca = env.get("TELERAD_DICOM_TLS_CA", s.dicom_tls_ca)
    s.dicom_tls_crl = env.get("TELERAD_DICOM_TLS_CRL", s.dicom_tls_crl)
    s.dicom_plain_networks = env.get("TELERAD_DICOM_PLAIN_NETWORKS", s.dicom_plain_networks)
    s.dicom_max_associations = _int(env, "TELERAD_DICOM_MAX_ASSOCIATIONS", s.dicom_max_associations)
    s.dicom_max_associations_per_ae = _int(
        env, "TELERAD_DICOM_MAX_ASSOCIATIONS_PER_AE", s.dicom_max_associations_per_ae
    )
    s.dicom_acse_timeout = _float(env, "TELERAD_DICOM_ACSE_TIMEOUT", s.dicom_acse_timeout)
    s.dicom_dimse_timeout = _float(env, "TELERAD_DICOM_DIMSE_TIMEOUT", s.dicom_dimse_timeout)
    s.dicom_network_timeout = _float(env, "TELERAD_DICOM_NETWORK_TIMEOUT", s.dicom_network_timeout)
    s.dicom_connection_timeout = _float(env, "TELERAD_DICOM_CONNECTION_TIMEOUT", s.dicom_connection_timeout)
    s.dicom_max_pdu = _int(env, "TELERAD_DICOM_MAX_PDU", s.dicom_max_pdu)
    s.dicom_processes = _int(env, "TELERAD_DICOM_PROCESSES", default_dicom_processes())
    if not 1 <= s.dicom_processes <= 64:
        raise ConfigError(f"TELERAD_DICOM_PROCESSES must be between 1 and 64, got {s.dicom_processes}")
    s.dicom_disk_full_percent = _float(env, "TELERAD_DICOM_DISK_FULL_PERCENT", s.dicom_disk_full_percent)
    s.dicom_conflict_status = _int(env, "TELERAD_DICOM_CONFLICT_STATUS", s.dicom_conflict_status)
    s.dicom_find_limit = _int(env, "TELERAD_DICOM_FIND_LIMIT", s.dicom_find_limit)
    s.dicomweb_rate_limit = env.get("TELERAD_DICOMWEB_RATE_LIMIT", s.dicomweb_rate_limit)
    s.qido_max_results = _int(env, "TELERAD_QIDO_MAX_RESULTS", s.qido_max_results)
    if not 1 <= s.qido_max_results <= 1000:
        raise ConfigError(f"TELERAD_QIDO_MAX_RESULTS must be between 1 and 1000 (DSEC-11), got {s.qido_max_results}")
    s.dicom_orphan_age_min = _int(env, "TELERAD_DICOM_ORPHAN_AGE_MIN", s.dicom_orphan_age_min)
    s.stow_max_bytes = _int(env, "TELERAD_STOW_MAX_BYTES", s.stow_max_bytes)
    if s.stow_max_bytes < 1024:
        raise ConfigError(f"TELERAD_STOW_MAX_BYTES must be at least 1024, got {s.stow_max_bytes}")
    s.stow_max_parts = _int(env, "TELERAD_STOW_MAX_PARTS", s.stow_max_parts)
    if not 1 <= s.stow_max_parts <= STOW_MAX_PARTS_CEILING:
        raise ConfigError(
            f"TELERAD_STOW_MAX_PARTS must be between 1 and {STOW_MAX_PARTS_CEILING}, got {s.stow_max_parts}"
        )
    s.trusted_proxies = _int(env, "TELERAD_TRUSTED_PROXIES", 0)
    s.ratelimit_storage_uri = env.get("TELERAD_RATELIMIT_STORAGE_URI", "memory://")
    s.login_user_ip_limit = env.get("TELERAD_LOGIN_USER_IP_LIMIT", s.login_user_ip_limit)
    s.login_ip_limit = env.get("TELERAD_LOGIN_IP_LIMIT", s.login_ip_limit)
    s.login_trusted_networks = env.get("TELERAD_LOGIN_TRUSTED_NETWORKS", s.login_trusted_networks)
    s.login_trusted_ip_limit = env.get("TELERAD_LOGIN_TRUSTED_IP_LIMIT", s.login_trusted_ip_limit)
    s.argon2_time_cost = _int(env, "TELERAD_ARGON2_TIME_COST", s.argon2_time_cost)
    s.argon2_memory_kib = _int(env, "TELERAD_ARGON2_MEMORY_KIB", s.argon2_memory_kib)
    s.idle_timeout_min = _int(env, "TELERAD_IDLE_TIMEOUT_MIN", s.idle_timeout_min)
    s.admin_idle_timeout_min = _int(env, "TELERAD_ADMIN_IDLE_TIMEOUT_MIN", s.admin_idle_timeout_min)
    s.absolute_timeout_hours = _int(env, "TELERAD_ABSOLUTE_TIMEOUT_HOURS", s.absolute_timeout_hours)
    s.password_max_age_days = _int(env, "TELERAD_PASSWORD_MAX_AGE_DAYS", s.password_max_age_days)
    s.audit_retention_days = _int(env, "TELERAD_AUDIT_RETENTION_DAYS", s.audit_retention_days)
    s.timer_poll_seconds = _int(env, "TELERAD_TIMER_POLL_SECONDS", s.timer_poll_seconds)
    if not 1 <= s.timer_poll_seconds <= 3600:
        raise ConfigError(f"TELERAD_TIMER_POLL_SECONDS must be between 1 and 3600, got {s.timer_poll_seconds}")
    s.oauth_token_lifetime_s = _int(env, "TELERAD_OAUTH_TOKEN_LIFETIME", s.oauth_token_lifetime_s)
    if not 60 <= s.oauth_token_lifetime_s <= 86400:
        raise ConfigError(
            f"TELERAD_OAUTH_TOKEN_LIFETIME must be between 60 and 86400 seconds, got {s.oauth_token_lifetime_s}"
        )
    s.dicomweb_decision_ttl_s = _float(env, "TELERAD_DICOMWEB_DECISION_TTL", s.dicomweb_decision_ttl_s)
    if not 0 <= s.dicomweb_decision_ttl_s <= 5:
        raise ConfigError(
            f"TELERAD_DICOMWEB_DECISION_TTL must be between 0 and 5 seconds, got {s.dicomweb_decision_ttl_s}"
        )
    s.dicomweb_frame_cache_mb = _int(env, "TELERAD_DICOMWEB_FRAME_CACHE_MB", s.dicomweb_frame_cache_mb)
    if not 0 <= s.dicomweb_frame_cache_mb <= 4096:
        raise ConfigError(
            f"TELERAD_DICOMWEB_FRAME_CACHE_MB must be between 0 and 4096, got {s.dicomweb_frame_cache_mb}"
        )
    s.web_dist = Path(env.get("TELERAD_WEB_DIST", str(Path(__file__).resolve().parent.parent / "web" / "dist")))
    secret = env.get("TELERAD_SECRET_KEY", "")
    for key, value in overrides.items():
        setattr(s, key, value)
    _check_login_throttle(s)
    if s.production:
        if s.debug:
            raise ConfigError("TELERAD_DEBUG must be off in production (WEB-05)")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"TELERAD_SECRET_KEY must be set to at least {MIN_SECRET_BYTES} bytes in production (SESS-03)"
            )
        if s.audit_retention_days < 180:
            raise ConfigError("TELERAD_AUDIT_RETENTION_DAYS must be at least 180 (AUD-04)")
    else:
        secret = secret or _instance_secret(instance_dir)
    s.secret_key = secret
    return s


_current: Settings | None = None


def set_current(settings: Settings) -> None:
    """Install the process-wide settings (create_app does this)."""
    global _current
    _current = settings


def current() -> Settings:
    """The process-wide settings.

    Raises:
        RuntimeError: create_app() / set_current() was not called.
    """
    if _current is None:
        raise RuntimeError("settings not loaded; call create_app() first")
    return _current
