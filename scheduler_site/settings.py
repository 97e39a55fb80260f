"""Settings for cronplane, read from the environment (and `.env`) with django-environ."""

import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from scheduler_site import limits

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def env_secret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (docker/k8s secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DEBUG", default=False)
TESTING = "pytest" in sys.modules
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: put it in .env (make run writes one) or the environment."
        )
    SECRET_KEY = "insecure-key-for-development-and-tests-only"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS=true when served over TLS (directly or behind a proxy that sets X-Forwarded-Proto):
# secure cookies, HSTS and the redirect to https. `make run` serves plain http on 127.0.0.1.
HTTPS = env.bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS
if env.bool("BEHIND_TLS_PROXY", default=HTTPS):
    # Only behind a proxy that overwrites this header; otherwise clients could spoof https.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    # runs comes before django_q so that its `qcluster` command (cluster + dispatcher) wins.
    "runs",
    "endpoints",
    "api",
    "dashboard",
    # The handlers the README and the API contracts name (registered when CRONPLANE_EXAMPLES).
    "examples",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "auditlog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "scheduler_site.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changed an endpoint: the signed-in user and the door (endpoints/audit.py).
    "endpoints.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "scheduler_site.lockout.AddressLimitMiddleware",
    # Last, as django-axes asks: it turns a lockout into the response below.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "scheduler_site.urls"
WSGI_APPLICATION = "scheduler_site.wsgi.application"

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
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, dispatcher and cluster workers all write this one file: WAL lets readers go on while
    # one writes, IMMEDIATE takes the write lock at BEGIN (no deadlock on upgrade), and the busy
    # timeout makes a writer wait its turn instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that subprocesses started by tests (qcluster) see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}
# Connections kept: django-q2's broker and monitor, the dispatcher, the workers' tasks and the
# recorders close their connection when it is older than this (each pass, task or write), and a
# new SQLite connection costs its PRAGMAs and Django's ~40 SQL functions (a fifth of the pusher
# and the monitor, profiled at 1,000 runs/s).
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if env.str("TEST_DATABASE_NAME", default=""):
    # Lets two test runs share a machine without sharing a test database.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if TESTING:
    # Hashing test users' passwords with PBKDF2 costs more than the tests themselves.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (scheduler_site.lockout): lock a username+address pair after repeated
# failures, and pause an address after many failures whatever the usernames.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "scheduler_site.lockout.locked_out"
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=20)
# Behind N reverse proxies that append to X-Forwarded-For, set AXES_IPWARE_PROXY_COUNT=N: the
# caller's address is then the N-th from the right (scheduler_site.lockout.client_address).
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=0) or None
AXES_CLIENT_IP_CALLABLE = "scheduler_site.lockout.client_address"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# Django's own time zone stays UTC; TIME_ZONE from the environment is the default for new schedules.
TIME_ZONE = "UTC"
SCHEDULER_DEFAULT_TIME_ZONE = env.str("TIME_ZONE", default="UTC")

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app directories in development and tests (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG or TESTING
WHITENOISE_AUTOREFRESH = DEBUG or TESTING
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# Self-service password reset only where its email reaches the user (not the server's console).
PASSWORD_RESET_ENABLED = EMAIL_CONFIG["EMAIL_BACKEND"] not in (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
)
PASSWORD_RESET_LIMIT = env.int("PASSWORD_RESET_LIMIT", default=5)  # per address and hour
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="cronplane@localhost")
# Who hears about failures of endpoints that name nobody themselves.
NOTIFY_EMAILS = env.list("NOTIFY_EMAILS", default=[])
NOTIFY_WEBHOOK_URL = env.str("NOTIFY_WEBHOOK_URL", default="")
# Apprise URLs (slack://…, tgram://…), separated by spaces or new lines (a URL may hold commas);
# read from NOTIFY_URLS_FILE when set, as they carry tokens.
NOTIFY_URLS = env_secret("NOTIFY_URLS").split()
# A failing endpoint that has alerted is reminded about at most this often (0: never).
NOTIFY_REMINDER_HOURS = env.float("NOTIFY_REMINDER_HOURS", default=0)
# The address people reach the dashboard at, for links in notifications.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- the scheduler ---------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Shared by every process (rate limits and sign-in counters must be one count, not one per
# gunicorn worker): Redis when REDIS_URL is set, else a table in the database.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cronplane",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cronplane_cache",
            # Django's default (300 entries, then a third is culled) would forget counters.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
CRON_SECRET = env_secret("CRON_SECRET")
SCHEDULER_ALLOWED_NETWORKS = env.list("SCHEDULER_ALLOWED_NETWORKS", default=[])
FIELD_ENCRYPTION_KEY = env_secret("FIELD_ENCRYPTION_KEY")
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=30)
# Bytes of a response body kept on the Log; the rest is counted, not stored.
SCHEDULER_RESPONSE_EXCERPT_BYTES = env.int("SCHEDULER_RESPONSE_EXCERPT_BYTES", default=16 * 1024)
# CA certificates (a PEM file or a c_rehash'd directory) that targets' TLS certificates are
# verified against; empty: requests' default (certifi). Set it for targets behind a private CA.
SCHEDULER_CA_BUNDLE = env.str("SCHEDULER_CA_BUNDLE", default="")
# A run that sees its target's certificate expire within this many days warns (once per
# certificate) everyone notified about the endpoint.
SCHEDULER_TLS_WARNING_DAYS = env.int("SCHEDULER_TLS_WARNING_DAYS", default=14)
# Register the example handlers (examples/handlers.py: billing:check-renewals,
# generateWeeklyExpiryReport) so that the README's and the contracts' examples run as written.
# Tests register stand-ins of their own under those names (tests/test_examples.py the real ones).
CRONPLANE_EXAMPLES = env.bool("CRONPLANE_EXAMPLES", default=not TESTING)
# Longest a single run may take; the per-endpoint timeout is capped by it.
SCHEDULER_MAX_TIMEOUT_SECONDS = limits.MAX_TIMEOUT_SECONDS
# A queued run held by no cluster (queued by a web process) whose task has not started after
# this long is handed to the broker again (a broker that lost it); running it twice is
# impossible. Runs held by a cluster come back as soon as that cluster's heartbeat is stale.
SCHEDULER_QUEUED_LEASE_SECONDS = env.int("SCHEDULER_QUEUED_LEASE_SECONDS", default=60)
# Calls in flight at once per worker process; more wait their turn (none is dropped).
SCHEDULER_MAX_IN_FLIGHT = env.int("SCHEDULER_MAX_IN_FLIGHT", default=1000)
# Environment variables request templates may read as {{ env.NAME }} (none unless listed).
SCHEDULER_TEMPLATE_ENV = env.list("SCHEDULER_TEMPLATE_ENV", default=[])
# Slots one backfill may cover.
SCHEDULER_MAX_BACKFILL_SLOTS = env.int("SCHEDULER_MAX_BACKFILL_SLOTS", default=1000)
# A job that runs after several jobs runs once each of them has ended the way it asks within
# this many seconds (a run older than that no longer counts towards it).
SCHEDULER_CHAIN_WINDOW_SECONDS = env.int("SCHEDULER_CHAIN_WINDOW_SECONDS", default=86400)
# Failed runs one bulk replay starts (the oldest; replaying again takes the next ones).
SCHEDULER_MAX_REPLAY_RUNS = env.int("SCHEDULER_MAX_REPLAY_RUNS", default=1000)

Q_CLUSTER = {
    "name": "cronplane",
    "workers": env.int("WORKERS", default=2),
    # A batch task only claims its runs and hands them to the worker's engine (runs/engine.py),
    # so it takes milliseconds (at most a 2 s wait for its slot): the timeout is a backstop, and
    # `retry` must exceed it or the ORM broker re-delivers live tasks.
    "timeout": 60,
    "retry": 120,
    # A recycled worker first finishes its calls in flight (runs/engine.py drain): rarely. A task
    # is a batch of runs, so this counts batches (handlers that leak: recycle sooner).
    "recycle": env.int("WORKER_RECYCLE", default=1_000_000),
    "max_attempts": 1,
    # Our Log rows are the record of every run; django-q2 keeps only failed tasks.
    "save_limit": -1,
    "ack_failures": True,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- the REST API (api/) -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.ApiTokenAuthentication",
        # The dashboard's own calls; DRF enforces CSRF for session-authenticated writes.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["api.errors.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.UserRate", "api.throttling.AnonRate"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_RATE_USER", default="1200/min"),
        "anon": env.str("API_RATE_ANON", default="120/min"),
        "cron": env.str("API_RATE_CRON", default="60/min"),
        # /ping/<uuid>, per address (many hosts behind one NAT may ping through one address).
        "ping": env.str("PING_RATE", default="600/min"),
        "cron_failures": env.str("API_RATE_CRON_FAILURES", default="10/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "cronplane API",
    "DESCRIPTION": "Nightly Scheduler jobs, Schedules, and Scheduled Actions over one scheduler.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The browser has no internet: Swagger UI's assets come from drf-spectacular-sidecar.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "ENUM_NAME_OVERRIDES": {"ActionStatusEnum": "runs.actions.STATUSES"},
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "cronSecret": {"type": "apiKey", "in": "header", "name": "x-cron-secret"},
        }
    },
}
# /api/v1/cron/process runs due work inline for at most this long per call (then stops taking more).
SCHEDULER_CRON_BUDGET_SECONDS = env.float("CRON_PROCESS_BUDGET_SECONDS", default=25.0)
SCHEDULER_CRON_BATCH_SIZE = env.int("CRON_PROCESS_BATCH_SIZE", default=100)
