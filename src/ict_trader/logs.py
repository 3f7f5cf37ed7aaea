"""Structured logs: one JSON object per line, with every secret masked before it is written.

Shared by every layer (secrets are registered where they are read: the CLI, the notifiers, the
dashboard); the engine's decisions are logged by the kernel (`runtime/decision_log.py`).

An unattended bot is debugged after the fact, from its log: each line carries the time (UTC),
level, logger and message, plus any structured fields passed as `extra={"fields": {...}}`, so
`jq` can answer "which orders went out at 11:02?". Secrets (broker keys, the Pushover token and
user key, the dashboard token) are replaced by `***` in every line, whatever logged them — an
exception text from a library included.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ict_trader.errors import ConfigError

_HANDLER_NAME = "ict-trader-file"


_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` in every log line from now on; called wherever a secret is read."""
    if len(value) >= 4:  # masking a 1-3 character string would mangle ordinary text
        _SECRETS.add(value)


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({key: _plain(value) for key, value in fields.items()})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.mask(json.dumps(entry, ensure_ascii=False, default=str))

    def mask(self, text: str) -> str:
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(_SECRETS, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def setup_logging(path: Path, level: int = logging.INFO) -> None:
    """Send ict-trader's (and its libraries') log records to `path` as JSON lines."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:  # called again (tests): replace, not add
            root.removeHandler(handler)
            handler.close()
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--log-file {path}: cannot write the log: {exc.strerror}") from None
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonLinesFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty third-party loggers stay at warnings: the decisions are ours to log.
    for name in ("urllib3", "websockets", "asyncio", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def close_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
