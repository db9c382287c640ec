"""The monthly report's chart, PDF and caption (jobs/report_render.py), drawn for real with matplotlib: what a
user would see in the picture and the document, and that nothing but the reports task loads matplotlib."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from expensebot.jobs import report_render
from expensebot.jobs.monthly_reports import MonthlyReport, report_from_rows
from expensebot.jobs.report_render import (
    CHART_SLICES,
    MAX_CAPTION_LENGTH,
    PALETTE,
    chart_slices,
    fit_caption,
    render_report,
    report_caption,
)

ROOT = Path(__file__).resolve().parents[2]
NOVEMBER = date(2026, 11, 1)
NBSP = "\u00a0"


def _report(categories: dict[str, str], *, rows: tuple[tuple[object, ...], ...] = ()) -> MonthlyReport:
    spend = [("expense_category", "RUB", name, Decimal(amount), 2) for name, amount in categories.items()]
    days = [("expense_day", "RUB", str(day), Decimal(amount), 1)
            for day, amount in zip((3, 7, 12, 20, 28), categories.values(), strict=False)]
    month = [("expense_month", "RUB", "2026-11", sum((Decimal(a) for a in categories.values()), Decimal(0)), 1)]
    return report_from_rows(7, NOVEMBER, [("user", "RUB", None, None, None), *spend, *days, *month, *rows])


def _colours(png: bytes) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}


def _hex(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _pdf_text(pdf: bytes) -> str:
    """The PDF's text as a reader extracts it (pypdf, through the fonts' Unicode maps)."""
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_month_of_many_categories_draws_the_largest_and_groups_the_rest_as_other():
    report = _report({f"c{i}": str(100 * (i + 1)) for i in range(9)})
    slices = chart_slices(report.main.categories, "ru")
    assert [name for name, _ in slices] == ["c8", "c7", "c6", "c5", "c4", "c3", "прочее"]
    assert slices[-1][1] == Decimal(100 + 200 + 300)
    assert len(slices) == CHART_SLICES + 1

    rendered = render_report(report, "ru")
    colours = _colours(rendered.png)
    assert {_hex(colour) for colour in PALETTE[: CHART_SLICES + 1]} <= colours
    assert Image.open(io.BytesIO(rendered.png)).size == (900, 420)


def test_a_month_of_one_category_draws_a_whole_ring_of_one_colour():
    rendered = render_report(_report({"cafe": "450.00"}), "ru")
    colours = _colours(rendered.png)
    assert _hex(PALETTE[0]) in colours
    assert _hex(PALETTE[1]) not in colours  # no second slice
    assert rendered.pdf.startswith(b"%PDF")


def test_a_month_without_expenses_draws_an_empty_grey_ring_and_still_makes_a_pdf():
    incomes_only = (("income_category", "RUB", "salary", Decimal("50000"), 1),
                    ("income_month", "RUB", "2026-11", Decimal("50000"), 1))
    report = report_from_rows(7, NOVEMBER, [("user", "RUB", None, None, None), *incomes_only])
    rendered = render_report(report, "ru")
    colours = _colours(rendered.png)
    assert _hex("#e0e0e0") in colours and _hex(PALETTE[0]) not in colours
    assert "Расходов нет" not in rendered.caption  # the caption gives the totals, not the chart's words
    assert f"Доходы: 50{NBSP}000,00{NBSP}₽" in rendered.caption
    lines = [" ".join(line.split()) for line in _pdf_text(rendered.pdf).splitlines()]
    assert "Всего доходов (1) 50 000,00" in lines and "Баланс +50 000,00" in lines


def test_the_pdf_embeds_dejavu_sans_and_its_cyrillic_is_text():
    budgets = (("budget", "RUB", None, Decimal("30000"), None),)
    report = _report({"groceries": "1200.50", "cafe": "300.00"}, rows=budgets)
    pdf = render_report(report, "ru").pdf
    assert re.search(rb"/BaseFont /DejaVuSans", pdf)
    lines = [" ".join(line.split()) for line in _pdf_text(pdf).splitlines()]
    assert lines[0] == "ExpenseBot — отчёт за ноябрь 2026"
    assert "Расходы и доходы, RUB (₽)" in lines
    assert "продукты 1 200,50 80,0 %" in lines and "кафе и рестораны 300,00 20,0 %" in lines
    assert "Всего расходов (4) 1 500,50" in lines
    assert "Прошлый месяц (октябрь): расходов не было, сравнивать не с чем." in lines
    assert "• Весь месяц: 1 500,50 ₽ из 30 000,00 ₽ (5 %)" in lines
    assert "Последние шесть месяцев, RUB (₽)" in lines
    assert "июнь 2026 0,00 0,00" in lines and "ноябрь 2026 1 500,50 0,00" in lines


def test_the_caption_carries_the_totals_in_the_users_language():
    rows = (("income_category", "RUB", "salary", Decimal("50000"), 1),
            ("expense_month", "RUB", "2026-10", Decimal("1000"), 1),
            ("budget", "RUB", None, Decimal("1000"), None))
    report = _report({"cafe": "1500.00"}, rows=rows)
    assert report_caption(report, "ru").splitlines() == [
        "📊 Отчёт за ноябрь 2026",
        f"Расходы: 1{NBSP}500,00{NBSP}₽ (2)",
        f"Доходы: 50{NBSP}000,00{NBSP}₽",
        f"Баланс: +48{NBSP}500,00{NBSP}₽",
        f"К прошлому месяцу (октябрь): +500,00{NBSP}₽ (+50,0 %)",
        "Бюджеты:",
        f"• Весь месяц: 1{NBSP}500,00{NBSP}₽ из 1{NBSP}000,00{NBSP}₽ (150 %) — превышен на 500,00{NBSP}₽",
    ]
    assert report_caption(report, "en").splitlines()[1] == "Expenses: 1,500.00 ₽ (2)"


def test_a_caption_never_exceeds_telegrams_limit_and_says_when_it_was_cut():
    budgets = tuple(("budget", "RUB", f"category number {i}", Decimal("100"), None) for i in range(60))
    caption = report_caption(_report({"cafe": "10.00"}, rows=budgets), "ru")
    assert len(caption) <= MAX_CAPTION_LENGTH
    assert caption.endswith("\n…")
    assert fit_caption(["a", "b"]) == "a\nb"


def test_importing_the_handlers_and_the_jobs_does_not_import_matplotlib():
    # Every function's cold start: the scheduled job's and the worker's handlers, every job and task, and
    # the report's own modules; only drawing a report imports matplotlib.
    code = f"""
import sys
sys.path[:0] = [{str(ROOT / 'layers' / 'expensebot')!r}, {str(ROOT / 'infra' / 'tools')!r}]
from pathlib import Path
from expensebot_tools.project.template import load_module
load_module(Path({str(ROOT / 'functions' / 'worker' / 'app.py')!r}))
load_module(Path({str(ROOT / 'functions' / 'scheduled_job' / 'app.py')!r}))
import expensebot.jobs, expensebot.jobs.monthly_reports, expensebot.jobs.report_render, expensebot.jobs.report_pdf
print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'matplotlib', 'numpy', 'PIL', 'fontTools'}}))
"""
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert output.stdout.strip().splitlines()[-1] == "[]"


def test_the_figure_is_reused_between_reports():
    first = render_report(_report({"cafe": "1.00"}), "ru")
    chart = report_render._figures.chart
    second = render_report(_report({"cafe": "1.00", "taxi": "2.00"}), "en")
    assert report_render._figures.chart is chart
    # and what was drawn for the first report is gone from the second: one legend, of two entries.
    assert first.png != second.png
    assert len(chart.figure.legends) == 1 and len(chart.figure.legends[0].get_texts()) == 2


@pytest.mark.parametrize("language", ["ru", "en"])
def test_file_names_carry_the_month(language):
    rendered = render_report(_report({"cafe": "1.00"}), language)
    assert (rendered.png_name, rendered.pdf_name) == ("expenses-2026-11.png", "expenses-2026-11.pdf")
