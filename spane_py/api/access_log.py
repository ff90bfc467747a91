"""No secret in the access log: query parameters that carry one are written as ``***``.

uvicorn logs each request's path with its query string (logger ``uvicorn.access``). The
dashboard sends the API token in a header only, but another client may still put it in the
URL (``/api/events?access_token=...``): ``install()`` adds a filter to that logger which
rewrites, before any handler formats the line, the value of every parameter whose name
looks like a credential (``access_token``, ``token``, ``api_key``, ``secret``,
``password``, ``signature``, ...). ``spane api`` and ``create_app`` install it.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "***"

# Matched against the decoded parameter name, case-insensitively.
_SECRET_NAME = re.compile(
    r"token|secret|passw|pwd|api[-_]?key|^key$|^auth(?:$|[-_]|orization)|signature|^sig$|"
    r"credential|session",
    re.IGNORECASE,
)
_PARAM = re.compile(r"([^&;=]*)=([^&;#]*)")


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(unquote_plus(name)) is not None


def redact(target: str) -> str:
    """``target`` (a path with its query string, or a URL) with every credential-like
    query parameter's value replaced by ``***``."""
    path, sep, rest = target.partition("?")
    if not sep:
        return target
    query, hash_sep, fragment = rest.partition("#")

    def hide(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}={REDACTED}" if is_secret_name(name) else match.group(0)

    return f"{path}?{_PARAM.sub(hide, query)}{hash_sep}{fragment}"


class RedactSecrets(logging.Filter):
    """Rewrites the request targets in an access-log record's arguments (and a message
    logged without arguments); lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(_redact_arg(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _redact_arg(v) for k, v in args.items()}
        elif isinstance(record.msg, str) and not args:
            record.msg = _redact_words(record.msg)
        return True


def _redact_arg(value: Any) -> Any:
    return _redact_words(value) if isinstance(value, str) and "?" in value else value


def _redact_words(text: str) -> str:
    if "?" not in text:
        return text
    return " ".join(redact(word) if "?" in word else word for word in text.split(" "))


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to ``uvicorn.access`` (or ``logger``), once."""
    target = logger if logger is not None else logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in target.filters):
        target.addFilter(RedactSecrets())


__all__ = ["ACCESS_LOGGER", "REDACTED", "RedactSecrets", "install", "is_secret_name", "redact"]
