"""Django settings, driven by GATEWAY_* environment variables (docs/operations/settings.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from gateway_milter import envconfig

try:
    GATEWAY = envconfig.load()
except envconfig.ConfigError as e:
    sys.stderr.write(f"configuration error: {e}\n")
    raise SystemExit(2) from None

BASE_DIR = Path(__file__).resolve().parent.parent
GATEWAY.data_dir.mkdir(parents=True, exist_ok=True)

DEBUG = GATEWAY.debug
_secret = envconfig.env_str("GATEWAY_SECRET_KEY")
if not _secret:
    key_file = GATEWAY.data_dir / "secret_key"
    if not key_file.exists():
        import secrets

        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    _secret = key_file.read_text().strip()
SECRET_KEY = _secret
ALLOWED_HOSTS = envconfig.env_list("GATEWAY_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envconfig.env_list("GATEWAY_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "webadmin",
    "quarantine",
    "reports",
]

# multipart files are bounded while received (webadmin/uploads.py), not after they filled the disk
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "webadmin.uploads.BoundedTemporaryFileUploadHandler"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "webadmin.middleware.refuse_nul_in_query",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
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
WSGI_APPLICATION = "config.wsgi.application"


def _database(url: str) -> dict[str, object]:
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(GATEWAY.data_dir / "bulwark.sqlite3"),
                "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}}
    u = urlparse(url)
    if u.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(u.path), "OPTIONS": {"timeout": 20}}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")) or "bulwark",
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "CONN_MAX_AGE": 60,
    }


DATABASES = {"default": _database(GATEWAY.database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = GATEWAY.data_dir / "static"
# Static files are served by the application itself (WhiteNoise): gateways sit in closed networks.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "/accounts/login/"

# Security defaults (check --deploy is clean when GATEWAY_HTTPS=true).
_https = envconfig.env_bool("GATEWAY_HTTPS", False)
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = _https and envconfig.env_bool("GATEWAY_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 31536000 if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = _https
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _https else None
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # (JSON whose strings are all text: webadmin.api_input.py)
    "DEFAULT_PARSER_CLASSES": ["webadmin.api_input.TextJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "webadmin.api_input.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {"TITLE": "Bulwark API", "VERSION": "1", "SERVE_INCLUDE_SCHEMA": False}

# Celery: Redis when GATEWAY_REDIS_URL is set; otherwise tasks run in-process (eager) and the
# worker command runs the periodic schedule itself.
CELERY_BROKER_URL = GATEWAY.redis_url or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = GATEWAY.embedded
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Periodic tasks (Celery beat, or the embedded scheduler of ``manage.py runworker``).
CELERY_BEAT_SCHEDULE = {
    "msglog-ingest": {"task": "msglog.ingest", "schedule": 10.0},
    "quarantine-digests": {"task": "quarantine.send_digests", "schedule": 300.0},
    "quarantine-purge": {"task": "quarantine.purge_expired", "schedule": 3600.0},
    "reports-rollup": {"task": "reports.rollup", "schedule": 300.0},
    "msglog-purge": {"task": "reports.purge_log", "schedule": 3600.0},
    "users-autocreate": {"task": "reports.autocreate_users", "schedule": 3600.0},
    "dmarc-reports": {"task": "dmarc.send_aggregate_reports", "schedule": 86400.0},
    "batv-key-rotation": {"task": "backscatter.rotate_keys", "schedule": 30 * 86400.0},
    "bayes-backup": {"task": "bayes.backup", "schedule": 86400.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envconfig.env_str("GATEWAY_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
