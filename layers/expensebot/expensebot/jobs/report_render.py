"""The monthly report as a picture and a document: a chart PNG (sendPhoto, with the totals in its caption) and
a PDF (sendDocument) of a MonthlyReport, in the user's language.

matplotlib is imported only inside the rendering functions (`_pyplot`), never at module level: the reports
worker pays for it on its first report, and no other function's cold start changes (`expensebot dev
import-times`; tests/unit/test_report_render.py checks that importing the handlers leaves it unimported).
The Agg and PDF backends draw without a display; matplotlib's bundled DejaVu Sans has Cyrillic and is
embedded in the PDF as a TrueType subset (Type 42) with a ToUnicode map, so its text can be searched and
copied. Three currency signs DejaVu Sans lacks (֏ ₾ ₼) are written as their ISO codes in the pictures.

Speed (make bench, `report_render`): one Figure per kind is kept per process and cleared between reports
(creating a Figure and its canvas costs more than clearing it), at a modest DPI, with few artists (no pie
labels, one bar container for the days)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from expensebot.jobs.monthly_reports import (
    CategorySpend,
    CurrencyMonth,
    MonthlyReport,
    budget_line,
    format_tenths,
    previous_month,
    signed_money,
)
from expensebot.money import format_money
from expensebot.texts import category_name, month_name, t

if TYPE_CHECKING:  # only for the annotations: importing matplotlib here would put it on every cold start
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_CAPTION_LENGTH = 1024  # Telegram's limit for a photo's caption
CHART_SLICES = 6  # categories drawn by name; the rest are one "other" slice
CHART_SIZE = (9.0, 4.2)  # inches: 1080 x 504 px at CHART_DPI
CHART_DPI = 120
PDF_PAGE = (8.27, 11.69)  # A4, inches
PDF_LINE = 0.0155  # one line of the PDF's text, as a fraction of the page's height
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f", "#bab0ac")
_MISSING_GLYPHS = {"֏": "AMD", "₾": "GEL", "₼": "AZN"}  # signs DejaVu Sans does not have


@dataclass(frozen=True)
class RenderedReport:
    png: bytes
    pdf: bytes
    caption: str
    png_name: str
    pdf_name: str


def render_report(report: MonthlyReport, language: str) -> RenderedReport:
    """The chart, the PDF and the caption of a report; the file names carry the month."""
    stem = f"expenses-{report.month:%Y-%m}"
    return RenderedReport(
        png=render_chart_png(report, language),
        pdf=render_pdf(report, language),
        caption=report_caption(report, language),
        png_name=f"{stem}.png",
        pdf_name=f"{stem}.pdf",
    )


# ---------------------------------------------------------------- the caption (no matplotlib)


def report_caption(report: MonthlyReport, language: str) -> str:
    """The totals under the chart, per currency (the user's first): expenses, incomes, balance, the change
    against the previous month, budgets. Cut at a line end to Telegram's 1,024 characters."""
    lines = [t(language, "report_title", month=month_name(language, report.month.month), year=report.month.year)]
    previous = month_name(language, previous_month(report.month).month)
    for cm in report.currencies:
        if not (cm.expense_count or cm.income_count):
            continue
        lines.append(t(language, "caption_expenses", total=format_money(cm.total, cm.currency, language),
                       count=cm.expense_count))
        if cm.income_count:
            lines.append(t(language, "caption_incomes", total=format_money(cm.income, cm.currency, language)))
            lines.append(t(language, "report_balance", amount=signed_money(cm.balance, cm.currency, language)))
        if cm.change_percent is not None:
            lines.append(t(language, "caption_change", month=previous,
                           amount=signed_money(cm.change, cm.currency, language),
                           percent=format_tenths(cm.change_percent, language, signed=True)))
    if report.budgets:
        lines.append(t(language, "report_budgets"))
        lines += [budget_line(budget, language) for budget in report.budgets]
    return fit_caption(lines)


def fit_caption(lines: Sequence[str], limit: int = MAX_CAPTION_LENGTH) -> str:
    """The lines that fit in `limit` characters, whole, and "…" when some were left out (the PDF has them)."""
    kept: list[str] = []
    for line in lines:
        if len("\n".join([*kept, line])) > limit - 2:
            return "\n".join([*kept, "…"])
        kept.append(line)
    return "\n".join(kept)


# ---------------------------------------------------------------- matplotlib, once per process


@cache
def _pyplot() -> Any:
    """matplotlib, configured once: Agg, DejaVu Sans, fonts embedded as TrueType so Cyrillic is text."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "pdf.fonttype": 42,
        "pdf.compression": 6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.fonttype": "none",
    })
    from matplotlib.figure import Figure

    return Figure


_figures = threading.local()  # one reused Figure per kind and thread (Lambda runs one report at a time)


def _figure(kind: str, size: tuple[float, float], dpi: int) -> Figure:
    figure_class = _pyplot()
    figure = getattr(_figures, kind, None)
    if figure is None:
        figure = figure_class(figsize=size, dpi=dpi)
        setattr(_figures, kind, figure)
    else:
        figure.clear()
    return figure


def _money(amount: Decimal, code: str, language: str) -> str:
    text = format_money(amount, code, language)
    for sign, iso in _MISSING_GLYPHS.items():
        text = text.replace(sign, iso)
    return text


def chart_slices(categories: Sequence[CategorySpend], language: str, limit: int = CHART_SLICES) -> list[tuple[str, Decimal]]:
    """The doughnut's slices, largest first: `limit` categories by name, the rest added up as "other"."""
    slices = [(category_name(language, spend.category), spend.amount) for spend in categories[:limit]]
    rest = sum((spend.amount for spend in categories[limit:]), Decimal(0))
    if rest:
        slices.append((t(language, "chart_other"), rest))
    return slices


def _draw_charts(figure: Figure, report: MonthlyReport, language: str, rect: tuple[float, float, float, float]) -> None:
    """The doughnut of categories (left) and the bars of the days (right), inside `rect` of the figure."""
    left, bottom, width, height = rect
    cm = report.main
    doughnut = figure.add_axes((left, bottom + height * 0.12, width * 0.36, height * 0.76))
    days = figure.add_axes((left + width * 0.5, bottom + height * 0.14, width * 0.48, height * 0.7))
    _draw_doughnut(doughnut, cm, language)
    _draw_days(days, cm, language)


def _draw_doughnut(ax: Axes, cm: CurrencyMonth, language: str) -> None:
    ax.set_title(t(language, "chart_categories"), fontsize=10)
    slices = chart_slices(cm.categories, language)
    if not slices:
        # No spending in the month (a report of incomes only, or an empty month asked for): an empty ring
        # that says so, rather than a blank space or a failed draw.
        ax.pie([1], colors=["#e0e0e0"], startangle=90, wedgeprops={"width": 0.38})
        ax.text(0, 0, t(language, "chart_no_expenses"), ha="center", va="center", fontsize=9)
        return
    ax.pie([float(amount) for _, amount in slices], colors=PALETTE[: len(slices)], startangle=90,
           counterclock=False, wedgeprops={"width": 0.38, "linewidth": 0.8, "edgecolor": "white"})
    ax.text(0, 0, _money(cm.total, cm.currency, language), ha="center", va="center", fontsize=9, weight="bold")
    total = sum((amount for _, amount in slices), Decimal(0))
    labels = [f"{name} — {format_tenths(amount * 100 / total, language)} %" for name, amount in slices]
    ax.legend(labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8, handlelength=1)


def _draw_days(ax: Axes, cm: CurrencyMonth, language: str) -> None:
    ax.set_title(t(language, "chart_days", currency=_MISSING_GLYPHS.get(cm.currency, cm.currency)), fontsize=10)
    count = len(cm.daily)
    ax.bar(range(1, count + 1), [float(amount) for amount in cm.daily], width=0.75, color=PALETTE[0])
    ax.set_xlim(0.3, count + 0.7)
    ax.set_xticks([1, 5, 10, 15, 20, 25, count])
    ax.tick_params(labelsize=8)
    if not any(cm.daily):
        ax.set_ylim(0, 1)
        ax.set_yticks([])


def render_chart_png(report: MonthlyReport, language: str) -> bytes:
    """The chart of the user's main currency: spending per category and per day, as a PNG."""
    figure = _figure("chart", CHART_SIZE, CHART_DPI)
    cm = report.main
    figure.suptitle(
        t(language, "chart_title", month=month_name(language, report.month.month), year=report.month.year,
          total=_money(cm.total, cm.currency, language)),
        fontsize=11, weight="bold",
    )
    _draw_charts(figure, report, language, (0.03, 0.0, 0.95, 0.92))
    buffer = io.BytesIO()
    # Optimising the PNG's compression costs more time than the bytes it saves are worth (make bench).
    figure.savefig(buffer, format="png", dpi=CHART_DPI, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


# ---------------------------------------------------------------- the PDF


@dataclass
class _Page:
    """A cursor down the PDF's pages: text lines in columns, a new page when the current one is full."""

    pages: Any  # matplotlib's PdfPages
    figure: Figure | None = None
    y: float = 0.0

    def new_page(self) -> Figure:
        if self.figure is not None:
            self.pages.savefig(self.figure)
        self.figure = _figure("pdf", PDF_PAGE, 72)
        self.y = 0.95
        return self.figure

    def need(self, lines: int) -> Figure:
        if self.figure is None or self.y - lines * PDF_LINE < 0.04:
            return self.new_page()
        return self.figure

    def row(self, *cells: tuple[float, str, str], bold: bool = False, size: float = 9) -> None:
        """One line; each cell is (x, text, alignment)."""
        figure = self.need(1)
        for x, text, align in cells:
            figure.text(x, self.y, text, ha=align, va="top", fontsize=size, weight="bold" if bold else "normal")
        self.y -= PDF_LINE

    def gap(self, lines: float = 0.6) -> None:
        self.y -= PDF_LINE * lines

    def finish(self) -> None:
        if self.figure is not None:
            self.pages.savefig(self.figure)


def render_pdf(report: MonthlyReport, language: str) -> bytes:
    """The month in a document: the charts, a table per currency of categories with shares, incomes and the
    balance, the change against the previous month, budgets, and the last six months per currency."""
    _pyplot()
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    month = month_name(language, report.month.month)
    with PdfPages(buffer, metadata={"Title": t(language, "pdf_title", month=month, year=report.month.year),
                                    "Creator": "ExpenseBot"}) as pages:
        page = _Page(pages)
        figure = page.new_page()
        page.row((0.06, t(language, "pdf_title", month=month, year=report.month.year), "left"), bold=True, size=15)
        page.gap(1)
        # The charts take the top third of the first page.
        _draw_charts(figure, report, language, (0.05, 0.6, 0.92, 0.3))
        page.y = 0.57
        for line in _pdf_lines(report, language):
            _write(page, line)
        page.finish()
    return buffer.getvalue()


# A PDF line: ("head", text) | ("row", name, amount, share) | ("text", text) | ("gap",)
_Line = tuple[str, ...]


def _write(page: _Page, line: _Line) -> None:
    if line[0] == "gap":
        page.gap()
    elif line[0] == "head":
        page.need(3)
        page.row((0.06, line[1], "left"), bold=True, size=11)
    elif line[0] == "row":
        page.row((0.08, line[1], "left"), (0.72, line[2], "right"), (0.9, line[3], "right"))
    else:
        page.row((0.08, line[1], "left"))


def _pdf_lines(report: MonthlyReport, language: str) -> Iterator[_Line]:
    previous = month_name(language, previous_month(report.month).month)
    for cm in report.currencies:
        if not (cm.expense_count or cm.income_count):
            continue

        def money(amount: Decimal, code: str = cm.currency) -> str:
            return _money(amount, code, language)

        yield ("head", t(language, "pdf_currency", currency=cm.currency))
        yield ("row", t(language, "pdf_category"), t(language, "pdf_amount"), t(language, "pdf_share"))
        for spend in cm.categories:
            yield ("row", category_name(language, spend.category), money(spend.amount),
                   f"{format_tenths(spend.share, language)} %")
        yield ("row", t(language, "pdf_total_expenses", count=cm.expense_count), money(cm.total), "")
        if cm.income_count:
            yield ("gap",)
            for spend in cm.income_categories:
                yield ("row", category_name(language, spend.category), money(spend.amount),
                       f"{format_tenths(spend.share, language)} %")
            yield ("row", t(language, "pdf_total_incomes", count=cm.income_count), money(cm.income), "")
            yield ("row", t(language, "pdf_balance"), _signed(cm.balance, cm.currency, language), "")
        yield ("gap",)
        if cm.change_percent is None:
            yield ("text", t(language, "report_previous_none", month=previous))
        else:
            yield ("text", t(language, "report_previous", month=previous, total=money(cm.previous_total)))
            yield ("text", t(language, "report_change", amount=_signed(cm.change, cm.currency, language),
                             percent=format_tenths(cm.change_percent, language, signed=True)))
        yield ("gap",)
    if report.budgets:
        yield ("head", t(language, "report_budgets").rstrip(":"))
        for budget in report.budgets:
            yield ("text", _replace_missing(budget_line(budget, language)))
        yield ("gap",)
    codes = list(dict.fromkeys(entry.currency for entry in report.history))
    for code in codes:
        yield ("head", t(language, "pdf_history", currency=code))
        yield ("row", t(language, "pdf_month"), t(language, "pdf_expenses"), t(language, "pdf_incomes"))
        for entry in report.history:
            if entry.currency == code:
                yield ("row", f"{month_name(language, entry.month.month)} {entry.month.year}",
                       _money(entry.expenses, code, language), _money(entry.incomes, code, language))
        yield ("gap",)


def _signed(amount: Decimal, code: str, language: str) -> str:
    return _replace_missing(signed_money(amount, code, language))


def _replace_missing(text: str) -> str:
    for sign, iso in _MISSING_GLYPHS.items():
        text = text.replace(sign, iso)
    return text
