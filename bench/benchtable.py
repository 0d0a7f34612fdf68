"""One small table type for every bench script: printed as text when run alone, markdown in the
report. Rows hold raw numbers; each column says how to format them, so the data stays usable.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

NO_GPU = "not measured (no GPU machine lent to this task)"


@dataclass
class Table:
    """A titled table of rows (cells: str, int, float or None) with a one-line meaning and notes.

    ``formats`` maps a column name to a format spec (``".3f"``, ``"+.1%"``); other numbers are
    shown with ``"g"``. ``None`` shows as an empty cell.
    """

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    meaning: str = ""
    notes: list[str] = field(default_factory=list)

    def add(self, *cells) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def add_not_measured(self, *leading, reason: str = NO_GPU) -> None:
        """A row that says why it has no numbers (e.g. the GPU rows on a CPU-only machine):
        the ``leading`` cells, then ``reason``, then empty cells."""
        blanks = len(self.columns) - len(leading) - 1
        if blanks < 0:
            raise ValueError(f"{self.title}: too many leading cells")
        self.rows.append([*leading, reason] + [None] * blanks)

    def add_device_not_measured(self, device: str, reason: str = NO_GPU) -> None:
        """A row for ``device`` in a table with a "device" column, saying why it is empty."""
        at = self.columns.index("device")
        self.add_not_measured(*(["(all)"] * at), device, reason=reason)

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def cell(self, column: str, value) -> str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value)
        return format(value, self.formats.get(column, "g"))

    def _cells(self) -> list[list[str]]:
        return [[self.cell(c, v) for c, v in zip(self.columns, row, strict=True)]
                for row in self.rows]  # fmt: skip

    def to_text(self) -> str:
        cells = self._cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        # a "not measured" row spills over the empty cells to its right
        lines = [f"\n## {self.title}", _text_row(self.columns, widths)]
        lines += [_text_row(r, widths) for r in cells]
        if self.meaning:
            lines.append(f"-> {self.meaning}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        align = ["---" if i == 0 else "---:" for i in range(len(self.columns))]
        lines = [f"### {self.title}", "", _md_row(self.columns), _md_row(align)]
        lines += [_md_row(r) for r in self._cells()]
        if self.meaning:
            lines += ["", f"**What this means:** {self.meaning}"]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _text_row(cells: list[str], widths: list[int]) -> str:
    out = cells[0].ljust(widths[0])
    for cell, width in zip(cells[1:], widths[1:], strict=True):
        out += "  " + (cell.rjust(width) if cell else " " * width)
    return out.rstrip()


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def ratio(value: float | None, base: float | None) -> float | None:
    """value / base, or None when either is missing or the base is zero."""
    if value is None or not base:
        return None
    return value / base


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; the median for q=50."""
    if not values:
        raise ValueError("no values")
    if q == 50:
        return statistics.median(values)
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def print_tables(tables: list[Table]) -> None:
    for table in tables:
        print(table.to_text())
