"""bench/report.py's rendering on fake rows: markdown tables, device rows, the report's layout.
No benchmark runs here and nothing is timed."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from benchtable import NO_GPU, Table, percentile  # noqa: E402
from report import QUICK, SECTIONS, Report, Settings, per_device, render  # noqa: E402


def fake_table(device: str = "cpu", base: float = 10.0) -> Table:
    table = Table(
        "predict vs bare",
        ["model", "device", "bare ms", "engine ms", "ratio"],
        formats={"bare ms": ".1f", "engine ms": ".1f", "ratio": ".3f"},
        meaning="engine within 1.10x",
        notes=["noisy machine"],
    )
    table.add("resnet|50", device, base, base * 1.05, 1.05)
    return table


def test_markdown_table_formats_cells_and_escapes_pipes():
    table = fake_table()
    table.add("lite0", "cpu", 2.25, None, None)
    lines = table.to_markdown().splitlines()
    assert lines[0] == "### predict vs bare"
    assert lines[2] == "| model | device | bare ms | engine ms | ratio |"
    assert lines[3] == "| --- | ---: | ---: | ---: | ---: |"
    assert lines[4] == "| resnet\\|50 | cpu | 10.0 | 10.5 | 1.050 |"
    assert lines[5] == "| lite0 | cpu | 2.2 |  |  |"  # None is an empty cell; .1f rounds half even
    assert "**What this means:** engine within 1.10x" in lines
    assert lines[-1] == "- noisy machine"
    # every row has as many cells as the header
    assert {line.count(" | ") for line in lines[2:6]} == {4}


def test_text_table_lines_up_columns():
    text = fake_table().to_text().splitlines()
    header, row = text[2], text[3]
    assert header.index("ratio") + len("ratio") == row.index("1.050") + len("1.050")


def test_a_row_with_the_wrong_number_of_cells_is_refused():
    with pytest.raises(ValueError, match="3 cells for 5 columns"):
        fake_table().add("x", "cpu", 1.0)


def test_missing_gpu_gets_a_not_measured_row_and_nothing_invented():
    calls = []

    def make(device):
        calls.append(device)
        return [fake_table(device)]

    (table,) = per_device(["cpu", "cuda"], {"cpu"}, make)
    assert calls == ["cpu"]
    assert table.rows[-1] == ["(all)", "cuda", NO_GPU, None, None]
    assert f"| (all) | cuda | {NO_GPU} |  |  |" in table.to_markdown()


def test_a_second_device_adds_its_rows_and_its_meaning_as_a_note():
    (table,) = per_device(["cpu", "cuda"], {"cpu", "cuda"}, lambda d: [fake_table(d, 4.0)])
    assert [row[1] for row in table.rows] == ["cpu", "cuda"]
    assert table.notes[-1] == "cuda: engine within 1.10x"


def test_percentile_interpolates():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    assert percentile([5.0], 90) == 5.0


def test_report_has_header_headlines_and_sections_in_order(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    report = Report()
    report.add("Engine", fake_table())
    report.add("Memory", "*Model cycling: skipped.*\n")
    report.seconds = {"Engine": 12.0}
    info = {"CPU": "2 cores", "RAM": "24 GiB", "GPU": "none (CPU only)"}
    text = render(report, info, ".venv/bin/python bench/report.py --quick",
                  datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC), 90.0,
                  ((1.0, 2.0, 3.0), (0.5, 0.5, 0.5)), QUICK)  # fmt: skip
    assert text.startswith("# modelkit benchmark report\n")
    command = "`.venv/bin/python bench/report.py --quick`"
    assert f"Generated 2026-01-02 03:04 UTC by {command} in 1.5 min" in text
    assert "- **RAM:** 24 GiB" in text
    assert "1.00, 2.00, 3.00 at the start" in text
    assert "This is a --quick run" in text
    assert "This run was overloaded:** the 1-minute load average reached 1.0" not in text
    overloaded = render(report, info, "cmd", datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
                        1.0, ((3.0, 1.0, 1.0), (0.5,) * 3))  # fmt: skip
    assert "overloaded:** the 1-minute load average reached 3.0 on 2 cores" in overloaded
    assert "- **Engine:** engine within 1.10x" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    numbered = [h for h in headings if h[3].isdigit()]
    assert numbered == [f"## {i}. {name}" for i, name in enumerate(SECTIONS, start=1)]
    assert text.index("| resnet\\|50 | cpu |") > text.index("## 3. Engine")
    assert text.index("*Model cycling: skipped.*") > text.index("## 5. Memory")
    full = render(report, info, "cmd", datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC), 1.0,
                  ((0.0,) * 3, (0.0,) * 3), Settings())  # fmt: skip
    assert "This is a --quick run" not in full and "overloaded" not in full
