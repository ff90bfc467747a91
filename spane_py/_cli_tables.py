"""Tables of the ``spane`` command that fit the terminal's width: ids stay whole on one line,
names wrap instead of being cut, and nothing ends in an ellipsis.

Rich shrinks a table that is too wide by cutting its cells (``…``); here the widths are
chosen first: every column gets its natural width, and when the table is too wide the
columns that may give way shrink, stage by stage (the widest of a stage first), down to
their minimum, their cells wrapping. Columns without a minimum (ids, statuses) never
shrink. When even the minimums do not fit, the table is printed at those widths, wider
than the terminal: a line that runs on is better than an id cut short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Two blanks between columns, a rule under the header, no outer border: a 36-character id
# and four more columns fit in 80 columns.
GAP = 2


@dataclass(frozen=True, slots=True)
class Column:
    """``minimum``: the narrowest the column may get, its cells wrapping (None: it never
    shrinks, so its cells stay on one line)."""

    header: str
    cells: Sequence[str | Text]
    minimum: int | None = None

    @property
    def natural(self) -> int:
        return max([_width(self.header), *(_width(c) for c in self.cells)])


def _width(cell: str | Text) -> int:
    text = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in text.splitlines()), default=0)


def fit_widths(
    columns: Sequence[Column], width: int, stages: Sequence[Sequence[int]] = ()
) -> list[int] | None:
    """The columns' widths for a table at most ``width`` wide: natural widths, then the
    columns of each stage (indexes into ``columns``) shrink in turn, the widest first,
    each down to its minimum. None when the table does not fit even then."""
    widths = [c.natural for c in columns]
    excess = sum(widths) + GAP * (len(columns) - 1) - width
    for stage in stages:
        while excess > 0:
            shrinkable = [
                i
                for i in stage
                if columns[i].minimum is not None and widths[i] > (columns[i].minimum or 0)
            ]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    return widths if excess <= 0 else None


def minimum_widths(columns: Sequence[Column]) -> list[int]:
    """Each column at its minimum (its natural width when it never shrinks)."""
    return [c.natural if c.minimum is None else min(c.natural, c.minimum) for c in columns]


def build_table(
    columns: Sequence[Column],
    widths: Sequence[int],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    """A table with these columns at exactly these widths (cells wrap, never cut)."""
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, GAP - 1, 0, 0),
        title=title,
        caption=caption,
    )
    for column, column_width in zip(columns, widths, strict=True):
        table.add_column(
            column.header,
            width=column_width,
            no_wrap=column.minimum is None,
            overflow="fold",
        )
    rows = len(columns[0].cells) if columns else 0
    for row in range(rows):
        table.add_row(*(column.cells[row] for column in columns))
    return table


def table_width(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * (len(widths) - 1)


def print_table(console: Console, table: Table, widths: Sequence[int]) -> None:
    """Print ``table`` whole: on a console narrower than it, at its own width (the
    terminal wraps the lines) rather than squeezed and cut. Widens ``console``."""
    needed = table_width(widths)
    if needed > console.width:
        console.width = needed
    console.print(table)


__all__ = [
    "GAP",
    "Column",
    "build_table",
    "fit_widths",
    "minimum_widths",
    "print_table",
    "table_width",
]


def print_fitted(columns: list[Column], stages: list[list[int]]) -> None:
    """Print the columns as a table that fits the terminal (``stages``: see
    ``fit_widths``), at its minimum widths when even that does not fit."""
    console = Console(highlight=False)
    widths = fit_widths(columns, console.width, stages) or minimum_widths(columns)
    print_table(console, build_table(columns, widths), widths)


def iso(value: datetime | None) -> str | None:
    """A time for ``--json`` output (ISO 8601), or None."""
    return value.isoformat() if value is not None else None


# The styles of result and state words in tables.
_WORD_STYLES = {
    "changed": "green",
    "unchanged": "dim",
    "error": "red",
    "active": "green",
    "paused": "yellow",
    "used": "dim",
    "revoked": "red",
    "expired": "yellow",
}


def styled(word: str) -> Text:
    """``word`` in its style (changed: green, error: red, paused: yellow, ...)."""
    return Text(word, style=_WORD_STYLES.get(word, ""))
