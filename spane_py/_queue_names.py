"""Names of queues: the rule every layer checks them by (definitions, the registry, the
``spane worker --queues`` option and the Redis queue), written once."""

from __future__ import annotations

import re

DEFAULT_QUEUE = "default"
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_queue_name_re = re.compile(QUEUE_NAME_PATTERN)


def check_queue_name(name: object, *, what: str = "queue name") -> str:
    """``name`` when it is a queue name (1-64 letters, digits, '_', '.' or '-', starting with
    a letter or digit); ``ValueError`` naming it and the rule otherwise."""
    if not isinstance(name, str) or not _queue_name_re.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not valid: 1-64 letters, digits, '_', '.' or '-', starting "
            "with a letter or a digit"
        )
    return name
