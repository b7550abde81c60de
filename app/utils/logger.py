"""Structured logging: one JSON object per line, request id on every line, secrets redacted.

`setup_logging` is called once at start-up. structlog and the standard library (uvicorn,
SQLAlchemy, alembic) share one pipeline, so the stream has a single format. Redaction is a
processor of that pipeline: callers cannot forget it.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
_HANDLER_NAME = "authsvc"
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|token|secret|authorization|cookie|api[_-]?key|credential|hash"
    # Two-factor codes: `code`/`otp` alone, never `status_code` or `error_code`.
    r"|^(?:codes?|otp)$|recovery_codes?|mfa_code",
    re.IGNORECASE,
)
# Keys that match the pattern above but name no secret: they stay readable.
_SAFE_KEYS = frozenset({"token_type"})
# Query parameters whose value is a credential: access_token, id_token, refresh_token,
# mfa_token, jwt, code (OAuth2), password, passwd, pw, pwd, secret, client_secret, key,
# api_key, signature, session, otp... Matched as a part of the name: an over-eager mask
# costs a little readability, a missed one leaks a credential for good.
_SECRET_PARAM_NAMES = [
    "token",
    "pass",
    "pw",
    "secret",
    "jwt",
    "key",
    "auth",
    "code",
    "credential",
    "sig",
    "session",
    "otp",
    "cookie",
    "ticket",
]
_SECRET_PARAM_NAME = "|".join(_SECRET_PARAM_NAMES)
_SECRET_PARAM = re.compile(_SECRET_PARAM_NAME, re.IGNORECASE)
# Fields that hold a raw query string; they are parsed, so encoded names (%70w) are caught.
_QUERY_KEYS = frozenset({"query", "query_string"})
_TEXT_SECRETS = (
    # JWTs (header.payload.signature, base64url) and credentials after an auth scheme.
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # Password hashes (argon2 PHC strings, bcrypt), e.g. inside a database error message.
    (re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9$=,+/.-]+"), REDACTED),
    (re.compile(r"\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}"), REDACTED),
    # The password in a URL's user info (scheme://user:password@host).
    (
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE),
        r"\1" + REDACTED + "@",
    ),
    # A secret query parameter inside any text (a URL in an error message, a request line).
    (
        re.compile(
            rf"((?:^|[?&;\s])[^\s=&?;#]*(?:{_SECRET_PARAM_NAME})[^\s=&?;#]*=)[^\s&;#]*",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
)
# Cheap first pass: text without any of these cannot match a pattern above (most values).
_MAYBE_SECRET = re.compile(r"eyJ|bearer|basic|\$argon2|\$2|://|=", re.IGNORECASE)
_MAX_DEPTH = 6
# structlog's own bookkeeping (the LogRecord of a stdlib line), removed before rendering.
_PIPELINE_KEYS = frozenset({"_record", "_from_structlog"})


def redact_query(query_string: str) -> str:
    """The query string with the values of credential-like parameters redacted."""
    if not query_string:
        return ""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    cleaned = [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs]
    return urlencode(cleaned, safe="[]")


def _sensitive(key: object) -> bool:
    return isinstance(key, str) and _sensitive_name(key)


@functools.lru_cache(maxsize=1024)
def _sensitive_name(key: str) -> bool:
    return key not in _SAFE_KEYS and bool(_SENSITIVE_KEY.search(key))


class Redactor:
    """The pipeline's redaction step: callers cannot forget it.

    Values of secret-looking keys (at any depth) become "[REDACTED]"; inside every string,
    JWTs, bearer/basic credentials, password hashes, URL passwords, credential-like query
    parameters and the literal values of the configured secrets (the signing key, the
    metrics token) are masked; a `query` field is parsed and its secret parameters masked.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.use(secrets)

    def use(self, secrets: Iterable[str]) -> None:
        """Mask these literal values from now on (replacing the previous ones)."""
        # Short values would mask innocent text and reveal little; real keys are long.
        literal = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, literal))) if literal else None

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        for key in list(event_dict):
            if key in _PIPELINE_KEYS:
                continue
            value = event_dict[key]
            if key in _QUERY_KEYS and isinstance(value, str):
                value = redact_query(value)
            event_dict[key] = REDACTED if _sensitive(key) else self._scrub(value)
        return event_dict

    def scrub_text(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(REDACTED, text)
        if _MAYBE_SECRET.search(text) is None:
            return text
        for pattern, replacement in _TEXT_SECRETS:
            text = pattern.sub(replacement, text)
        return text

    def _scrub(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, bytes | bytearray):
            return self.scrub_text(bytes(value).decode("utf-8", "replace"))
        if depth >= _MAX_DEPTH:
            return REDACTED  # too deep to inspect: safer dropped than leaked
        if isinstance(value, Mapping):
            return {
                k: REDACTED if _sensitive(k) else self._scrub(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(v, depth + 1) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        # Anything else is rendered with str() by the JSON encoder: scrub that text now.
        return self.scrub_text(str(value))


def _timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    now = datetime.now(UTC)
    event_dict["timestamp"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event_dict


def _level_and_message(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict["level"] = event_dict.pop("level", method).upper()
    event_dict["message"] = event_dict.pop("event", "")
    record = event_dict.pop("_record", None)
    if "logger" not in event_dict and record is not None:
        event_dict["logger"] = record.name
    event_dict.pop("_from_structlog", None)
    event_dict.pop("color_message", None)  # uvicorn's ANSI duplicate of the message
    event_dict.setdefault("request_id", None)
    return event_dict


# JSON escapes CR, LF and the C0 controls; these three are legal raw inside a JSON string
# but some readers (Python's splitlines, JavaScript) take them for line breaks.
_UNICODE_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_dumps(obj: Any, **_: Any) -> str:
    # orjson emits these characters only inside strings, where the escape is equivalent.
    return orjson.dumps(obj, default=str).decode().translate(_UNICODE_LINE_BREAKS)


class _Renderer:
    """Stable keys first, the event's own fields next, the request context and a traceback
    last, always in the same order, so a human scanning the JSON finds them."""

    _FIRST = ("timestamp", "level", "logger", "message", "request_id")
    _LAST = ("user_id", "method", "endpoint", "client_ip", "exception")

    def __init__(self, fmt: Literal["json", "console"], *, colors: bool = False) -> None:
        self._json = fmt == "json"
        self._console = structlog.dev.ConsoleRenderer(colors=colors)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        if not self._json:
            event_dict["event"] = event_dict.pop("message", "")
            return self._console(logger, name, event_dict)
        ordered: MutableMapping[str, Any] = {
            k: event_dict.pop(k) for k in self._FIRST if k in event_dict
        }
        last = {k: event_dict.pop(k) for k in self._LAST if k in event_dict}
        ordered.update(event_dict)
        ordered.update(last)
        return _json_dumps(ordered)


_STRUCTLOG_REDACTOR = Redactor()


def _shared_processors(redactor: Redactor) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _timestamp,
        structlog.processors.format_exc_info,
        redactor,
    ]


def build_handler(
    fmt: Literal["json", "console"] = "json",
    *,
    stream: Any = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """The one handler of the process: stdlib records rendered by the structlog pipeline."""
    stream = stream or sys.stdout
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(Redactor(secrets)),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _level_and_message,
            _Renderer(fmt, colors=fmt == "console" and _isatty(stream)),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    return handler


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def uvicorn_log_config(
    level: str = "INFO", fmt: Literal["json", "console"] = "json"
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn's `log_config`.

    uvicorn applies it in every worker process before the application starts, so even its
    first lines ("Started server process") come out in the service's format; the lifespan's
    `setup_logging` later replaces the handler of the same name with an identical one.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {_HANDLER_NAME: {"()": f"{__name__}.build_handler", "fmt": fmt}},
        "root": {"handlers": [_HANDLER_NAME], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # The request middleware writes one richer line per request instead.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def setup_logging(
    level: str = "INFO",
    fmt: Literal["json", "console"] = "json",
    *,
    stream: Any = None,
    secrets: Iterable[str] = (),
    mute: Iterable[str] = (),
) -> None:
    """Configure structlog and the standard library's root logger once, for the process.

    `secrets` are values (the signing key, ...) masked wherever they would appear. `mute`
    names loggers whose records this handler drops (a filter on the handler, not a level on
    the logger, so the next `setup_logging` starts clean).
    """
    # One redactor for the process, updated in place: structlog caches each logger's
    # processor chain on first use, so a new Redactor would not reach loggers already used.
    _STRUCTLOG_REDACTOR.use(secrets)
    redactor = _STRUCTLOG_REDACTOR
    handler = build_handler(fmt, stream=stream, secrets=secrets)
    muted = tuple(mute)
    if muted:
        handler.addFilter(lambda record: not record.name.startswith(muted))
    root = logging.getLogger()
    # Replace only our own handler: a second call (tests, reload) must not stack them, and
    # handlers installed by others (pytest's capture) stay.
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own handlers; route everything through the root instead, and
    # drop uvicorn's access log: the request middleware writes one richer line per request.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "alembic"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # Their DEBUG/INFO lines carry SQL parameters (emails, password hashes): never wanted.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)

    structlog.configure(
        processors=[
            *_shared_processors(redactor),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_context(**fields: Any) -> None:
    """Add fields (e.g. `user_id`) to every later line of the current request or task."""
    structlog.contextvars.bind_contextvars(**fields)
