"""Structured logging: one JSON object per line, request id on every line, secrets redacted.

`setup_logging` is called once at start-up. structlog and the standard library (uvicorn,
SQLAlchemy, alembic) share one pipeline, so the stream has a single format. Redaction is a
processor of that pipeline: callers cannot forget it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
_HANDLER_NAME = "authsvc"
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|token|secret|authorization|cookie|api[_-]?key|credential|hash",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_MAX_DEPTH = 6


def _scrub_text(text: str) -> str:
    return _JWT.sub(REDACTED, _BEARER.sub(r"\1 " + REDACTED, text))


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _SENSITIVE_KEY.search(k) else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace values of secret-looking keys; mask bearer tokens and JWTs inside strings."""
    for key in list(event_dict):
        if _SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


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


def _json_dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


class _Renderer:
    """Puts the stable keys first so a human scanning the JSON finds them."""

    _FIRST = ("timestamp", "level", "logger", "message", "request_id")

    def __init__(self, fmt: Literal["json", "console"]) -> None:
        self._json = fmt == "json"
        self._console = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        if not self._json:
            event_dict["event"] = event_dict.pop("message", "")
            return self._console(logger, name, event_dict)
        ordered: MutableMapping[str, Any] = {
            k: event_dict.pop(k) for k in self._FIRST if k in event_dict
        }
        ordered.update(event_dict)
        return _json_dumps(ordered)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _timestamp,
        structlog.processors.format_exc_info,
        redact,
    ]


def setup_logging(
    level: str = "INFO", fmt: Literal["json", "console"] = "json", *, stream: Any = None
) -> None:
    """Configure structlog and the standard library's root logger once, for the process."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _level_and_message,
            _Renderer(fmt),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
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
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
