"""The exception tree drawn in ``spane_py/errors.py``'s docstring matches the classes.

Every class drawn exists and has the drawn parent; every public exception class of the module
is drawn, once; an ``(HTTP nnn)`` note matches the class's ``http_status``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import spane_py.errors as errors

# One line of the drawing: the branch characters, a class name, an optional "(HTTP nnn)".
LINE = re.compile(r"^(?P<branch>[ │├└─]*)(?P<name>[A-Z]\w*)(?:\s+\(HTTP (?P<http>\d{3})\))?\s*$")
STEP = 4  # "├── " / "│   ": each level of the drawing is four characters further in


@dataclass(frozen=True)
class Drawn:
    name: str
    parent: str | None  # None for the root
    http: int | None
    line: int  # in the docstring, for the messages


def drawn_tree(doc: str) -> list[Drawn]:
    """The drawing: the first block of tree lines in ``doc`` (it ends at a blank line)."""
    lines = doc.splitlines()
    start = next(i for i, text in enumerate(lines) if text.strip() == "SpaneError")
    indent = len(lines[start]) - len(lines[start].lstrip())
    drawn: list[Drawn] = []
    path: list[str] = []  # the names on the way down to the current line
    for number, text in enumerate(lines[start:], start=start + 1):
        if not text.strip():
            break
        match = LINE.match(text[indent:])
        assert match, f"docstring line {number} is not a line of the tree: {text!r}"
        branch = match["branch"]
        assert len(branch) % STEP == 0, f"docstring line {number} is indented oddly: {text!r}"
        depth = len(branch) // STEP
        assert depth <= len(path), f"docstring line {number} skips a level: {text!r}"
        if depth:
            assert branch[-STEP:] in ("├── ", "└── "), f"docstring line {number}: {text!r}"
        del path[depth:]
        http = int(match["http"]) if match["http"] else None
        drawn.append(Drawn(match["name"], path[-1] if path else None, http, number))
        path.append(match["name"])
    return drawn


def public_exceptions() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if not name.startswith("_")
        and inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }


def test_the_drawing_is_read() -> None:
    drawn = drawn_tree(errors.__doc__ or "")
    assert drawn[0] == Drawn("SpaneError", None, None, drawn[0].line)
    assert len(drawn) > 20
    # Nesting is read (not every line taken for a child of the root), and the HTTP notes.
    shape = {d.name: (d.parent, d.http) for d in drawn}
    assert shape["NodeTimeoutError"] == ("NodeExecutionError", None)
    assert shape["WebhookPayloadTooLargeError"] == ("WebhookPayloadError", 413)
    assert shape["QueueError"] == ("SpaneError", None)


def test_every_drawn_class_exists_with_the_drawn_parent() -> None:
    problems = []
    for d in drawn_tree(errors.__doc__ or ""):
        cls = getattr(errors, d.name, None)
        if not (inspect.isclass(cls) and issubclass(cls, BaseException)):
            problems.append(f"line {d.line}: {d.name} is drawn but is not a class of errors.py")
            continue
        if d.parent is None:
            if cls is not errors.SpaneError:
                problems.append(f"line {d.line}: the root is {d.name}, not SpaneError")
            continue
        # The parent inside the tree: the base that is a SpaneError (other bases, such as
        # TimeoutError for ExecutionWaitTimeoutError, are not drawn).
        parents = [b.__name__ for b in cls.__bases__ if issubclass(b, errors.SpaneError)]
        if parents != [d.parent]:
            problems.append(
                f"line {d.line}: {d.name} is drawn under {d.parent}; "
                f"its SpaneError bases are {parents}"
            )
    assert problems == []


def test_every_public_exception_is_drawn_once() -> None:
    drawn = [d.name for d in drawn_tree(errors.__doc__ or "")]
    twice = sorted({name for name in drawn if drawn.count(name) > 1})
    assert twice == [], f"drawn more than once: {twice}"
    missing = sorted(set(public_exceptions()) - set(drawn))
    assert missing == [], f"exception classes of errors.py missing from the drawing: {missing}"


def test_http_notes_match_the_classes() -> None:
    problems = []
    for d in drawn_tree(errors.__doc__ or ""):
        cls = getattr(errors, d.name, None)
        if cls is None:
            continue  # reported by the test above
        own = vars(cls).get("http_status")  # set on this class, not inherited
        if d.http is not None and getattr(cls, "http_status", None) != d.http:
            problems.append(f"{d.name}: drawn (HTTP {d.http}), http_status is {own}")
        if d.http is None and own is not None:
            problems.append(f"{d.name}: sets http_status {own}, the drawing has no (HTTP ...)")
    assert problems == []
