"""One settings module, read from the environment (and an optional .env beside manage.py).

Every value has a default that works on a fresh checkout (SQLite, DEBUG on); production sets the
environment. See .env.example for the full list.
"""

from pathlib import Path

import environ
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG: bool = env.bool("DEBUG", default=True)
# A fixed development secret is fine only with DEBUG on; the deploy check flags it otherwise, and the
# server warns at start-up while it is in use (the first `make run` writes a .env with a random one).
DEVELOPMENT_SECRET_KEY = "django-insecure-dev-only-change-me-in-production-0123456789"
SECRET_KEY: str = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",  # (not rest_framework.authtoken: our tokens are hashed, profiles.ApiToken)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us (no CDN)
    "profiles",
    "conversations",
    "usage",  # usage records, prices, budgets (chat records every upstream call here)
    "chat",
]

# Django's own middleware, in Django's order. Under ASGI the handler (core/django_internals.py) runs
# their on-loop twins: the same hooks, without a thread hop each.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# SQLite: requests to the async views (the streaming API) run their queries on the process's one
# shared sync thread (core/django_internals.py), so its connection is kept rather than reopened per
# request (~0.7 ms of CPU each); a sync view's per-request thread drops its connection when the
# thread ends. PostgreSQL reuses connections through its pool instead, which needs CONN_MAX_AGE 0.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0 if _POSTGRESQL else 600))
# SQLite: a write-ahead log, synced at checkpoints rather than at every commit. A saved conversation
# commits a few times per answer (its start, its text each second, its end): with SQLite's defaults
# (a rollback journal synced at each commit) one costs ~0.8 ms of CPU and ~15 ms of waiting, with
# these ~75 µs and ~0.25 ms (measured). A power cut can lose the last commits; a crash cannot.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )
# PostgreSQL: a connection pool per worker process. Every request to a sync view runs its queries
# on a thread of its own, so without one a burst of requests opens as many connections at once
# and, past the server's max_connections, fails with 500s; with it the burst waits for a free one.
DB_POOL_SIZE: int = env.int("DB_POOL_SIZE", default=10)
if _POSTGRESQL and DB_POOL_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_SIZE,
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Local memory unless REDIS_URL is set (then shared by every worker process).
REDIS_URL: str = env.str("REDIS_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# The ASGI app serves /static/ itself unless a proxy does (asgi.py).
SERVE_STATIC: bool = env.bool("SERVE_STATIC", default=True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"
# Self-service sign-up at /accounts/signup/: open by default in development, closed in production.
SIGNUP_ENABLED: bool = env.bool("SIGNUP_ENABLED", default=DEBUG)

# --- Accounts ---------------------------------------------------------------------------------
# Failed password logins per client address (login page, admin login, POST /api/token/) before
# logins from it are refused for the rest of the window: "5/min", "20/hour", "5/30s"; empty: off.
LOGIN_FAILURE_RATE: str = env.str("LOGIN_FAILURE_RATE", default="5/min")
# Password-reset e-mail, from EMAIL_URL: consolemail:// (the default) prints each one; in production
# smtp+tls://user:password@host:587 (STARTTLS) or smtp+ssl://...:465. django-environ parses the URL into the
# EMAIL_* settings that Django 6.1's MAILERS replaces; they are handed to the backend as its OPTIONS.
_EMAIL = env.email_url("EMAIL_URL", default="consolemail://")
_EMAIL_OPTIONS = {
    "EMAIL_HOST": "host",
    "EMAIL_PORT": "port",
    "EMAIL_HOST_USER": "username",
    "EMAIL_HOST_PASSWORD": "password",
    "EMAIL_USE_TLS": "use_tls",
    "EMAIL_USE_SSL": "use_ssl",
    "EMAIL_FILE_PATH": "file_path",
}
_MAILER_OPTIONS = {option: _EMAIL[name] for name, option in _EMAIL_OPTIONS.items() if _EMAIL.get(name)}
if _EMAIL["EMAIL_BACKEND"].endswith(".smtp.EmailBackend"):
    # Seconds to wait for the mail server: without it a stalled one holds the request forever.
    _MAILER_OPTIONS["timeout"] = env.int("EMAIL_TIMEOUT", default=10)
MAILERS = {"default": {"BACKEND": _EMAIL["EMAIL_BACKEND"], "OPTIONS": _MAILER_OPTIONS}}
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="BYOK Chat <noreply@localhost>")
# Seconds a password-reset link works (and only once: setting the password invalidates it).
PASSWORD_RESET_TIMEOUT: int = env.int("PASSWORD_RESET_TIMEOUT", default=3600)

# --- Pages ------------------------------------------------------------------------------------
# The chat page's model picker; the first is preselected.
CHAT_MODELS: list[str] = env.list("CHAT_MODELS", default=["gpt-4o-mini", "gpt-4o", "o4-mini", "gpt-5"])
# The picker lists the models the user's key reaches (GET /models upstream, cached per user for a
# few minutes; CHAT_MODELS first, and CHAT_MODELS alone if the list cannot be had). False: always
# CHAT_MODELS, as configured.
CHAT_MODELS_FROM_UPSTREAM: bool = env.bool("CHAT_MODELS_FROM_UPSTREAM", default=True)

# No inline script or style anywhere (the admin included): model output that slips into the DOM
# still cannot run. Pages load only their own static files and call only this origin.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Request bodies: chat messages may carry images as data URLs, so allow a few MiB; past it: 413.
DATA_UPLOAD_MAX_MEMORY_SIZE: int = env.int("MAX_REQUEST_BYTES", default=8 * 1024 * 1024)

# --- Profile key encryption -------------------------------------------------------------------
# Comma-separated Fernet keys, newest first: the first encrypts, all decrypt (rotation).
# Generate one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
PROFILE_ENCRYPTION_KEYS: list[str] = env.list("PROFILE_ENCRYPTION_KEYS", default=[])

# --- Upstream OpenAI --------------------------------------------------------------------------
OPENAI_BASE_URL: str = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
# Seconds to connect, and seconds without a byte from upstream (before and during a stream).
OPENAI_CONNECT_TIMEOUT: float = env.float("OPENAI_CONNECT_TIMEOUT", default=10.0)
OPENAI_TIMEOUT: float = env.float("OPENAI_TIMEOUT", default=60.0)
# Retries of 5xx / connection failures, only before the first byte is relayed.
OPENAI_MAX_RETRIES: int = env.int("OPENAI_MAX_RETRIES", default=2)
# Open upstream connections per worker process (one per concurrent stream).
OPENAI_MAX_CONNECTIONS: int = env.int("OPENAI_MAX_CONNECTIONS", default=4096)
# Users may point their own key at an OpenAI-compatible server of theirs (settings page, PATCH
# /api/profile/ openai_base_url). Off by default: it makes this server connect where users say.
USER_BASE_URL_ENABLED: bool = env.bool("USER_BASE_URL_ENABLED", default=False)
# Hosts a user's or the team key's base URL may use although they fail the SSRF guard
# (upstream/host_guard.py): plain http, or private/loopback addresses. E.g. "ollama.lan,10.0.0.5".
UPSTREAM_ALLOWED_HOSTS: list[str] = env.list("UPSTREAM_ALLOWED_HOSTS", default=[])

# --- Limits -----------------------------------------------------------------------------------
# Concurrent streams per user (0: no cap), counted in the cache above: per process unless REDIS_URL.
MAX_STREAMS_PER_USER: int = env.int("MAX_STREAMS_PER_USER", default=4)
# A stream's slot frees itself after this many seconds even if its worker died without releasing it.
STREAM_SLOT_TTL: int = env.int("STREAM_SLOT_TTL", default=600)
# Seconds a user's monthly spend is cached for the budget check (usage/budgets.py): how stale the
# check may be. Budgets themselves are off unless staff or the user set one.
USAGE_BUDGET_CACHE_SECONDS: int = env.int("USAGE_BUDGET_CACHE_SECONDS", default=5)

# --- Saved conversations (conversations/) ------------------------------------------------------
# Characters in one message (a question, or each message of an imported file): past it, a 400.
MESSAGE_MAX_CHARS: int = env.int("MESSAGE_MAX_CHARS", default=100_000)
# Messages in one conversation, every branch counted (the whole tree is read to show one branch).
CONVERSATION_MAX_MESSAGES: int = env.int("CONVERSATION_MAX_MESSAGES", default=2_000)
# Conversations per page of GET /api/conversations/ (?page_size= up to 100).
CONVERSATIONS_PAGE_SIZE: int = env.int("CONVERSATIONS_PAGE_SIZE", default=50)
# Import files (POST /api/conversations/import/): a ChatGPT conversations.json easily outgrows
# MAX_REQUEST_BYTES, so the import has a body limit of its own (chatproject/body_limit.py).
IMPORT_MAX_BYTES: int = env.int("IMPORT_MAX_BYTES", default=20 * 1024 * 1024)
IMPORT_MAX_CONVERSATIONS: int = env.int("IMPORT_MAX_CONVERSATIONS", default=1_000)
# A streaming answer's text is written at most this often (seconds) and when it ends: what a reload
# shows mid-answer is at most this old; a stop through another worker takes effect within it.
MESSAGE_FLUSH_SECONDS: float = env.float("MESSAGE_FLUSH_SECONDS", default=1.0)
# After a conversation's first answer, a short title from a small model, with the user's own key.
CONVERSATION_AUTO_TITLE: bool = env.bool("CONVERSATION_AUTO_TITLE", default=True)
CONVERSATION_TITLE_MODEL: str = env.str("CONVERSATION_TITLE_MODEL", default="gpt-4o-mini")

# --- HTTPS and cookies ------------------------------------------------------------------------
# Safe by default once DEBUG is off (what `manage.py check --deploy` asks for); each one can be
# overridden. Behind a proxy that terminates TLS, set SECURE_PROXY_SSL_HEADER (e.g.
# "HTTP_X_FORWARDED_PROTO,https") or SECURE_SSL_REDIRECT=false, or every request redirects forever.
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# Preloading is a promise about the whole domain that browsers keep for months: only on request.
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_PROXY_SSL_HEADER: tuple[str, ...] | None = env.tuple("SECURE_PROXY_SSL_HEADER", default=None)

REST_FRAMEWORK = {
    # The token first: its WWW-Authenticate header makes "not logged in" a 401 rather than a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "profiles.api_auth.TokenOrBearerAuthentication",  # 'Token <t>' and 'Bearer <t>'
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # The body size limit (413) and orjson's nesting limit (400) for DRF too (core/drf.py).
    "DEFAULT_PARSER_CLASSES": ["core.drf.JSONParser", "core.drf.FormParser", "core.drf.MultiPartParser"],
    "EXCEPTION_HANDLER": "core.drf.drf_exception_handler",  # the one JSON error shape
    # Reverse proxies in front that append to X-Forwarded-For; 0 uses the peer address (unspoofable).
    # The login throttle (LOGIN_FAILURE_RATE above) finds the client's address the same way.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI schema at /api/schema/, Swagger UI at /api/docs/.
SPECTACULAR_SETTINGS = {
    "TITLE": "BYOK Chat API",
    "DESCRIPTION": "Your profile and API token; the chat endpoint; OpenAI-compatible /v1 endpoints for "
    "the official OpenAI SDKs (base_url http://host/v1, api_key = your API token).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the drf-spectacular-sidecar package's static files: works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The async views (chat, /v1) are not DRF views: described by hand.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chat.openapi.add_async_views",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_errors_at_info": {"()": "chatproject.log_filters.ClientErrorsAtInfo"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # One line per event: Django's default config gives "django" a console handler of its own
        # (with DEBUG on), and its records also reach the root's: every one was printed twice.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # On the logger, not a handler: every handler (and pytest's caplog) then sees the same level.
        "django.request": {"filters": ["client_errors_at_info"]},
        # The SDK logs request options at DEBUG; keep it quiet whatever LOG_LEVEL says.
        "openai": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
