"""The monthly report as a picture and a document: a chart PNG (sendPhoto, with the totals in its caption) and
a PDF (sendDocument) of a MonthlyReport, in the user's language.

matplotlib is imported only inside the drawing functions (`_pyplot`), never at module level: the reports
worker pays for it on its first report, and no other function's cold start changes (`expensebot dev
import-times`; tests/unit/test_report_render.py checks that importing the handlers leaves it unimported).
The chart is drawn by Agg; the PDF is written by report_pdf with the chart's PNG and text in DejaVu Sans
(matplotlib's bundled font, which has Cyrillic), embedded with a Unicode map so the text can be searched and
copied. Three currency signs DejaVu Sans lacks (֏ ₾ ₼) are written as their ISO codes in the pictures.

Speed (make bench, `report_render`): the chart's figure, axes and ticks are built once per process and only
the report's artists are replaced; the fonts are cut down to the characters a report uses once per process;
the PDF embeds the PNG as it is and lays its text out itself."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from expensebot.jobs.monthly_reports import (
    CategorySpend,
    CurrencyMonth,
    MonthlyReport,
    budget_line,
    format_tenths,
    previous_month,
    signed_money,
)
from expensebot.money import currency, format_money
from expensebot.texts import category_name, month_name, t

MAX_CAPTION_LENGTH = 1024  # Telegram's limit for a photo's caption
CHART_SLICES = 6  # categories drawn by name; the rest are one "other" slice
CHART_SIZE = (9.0, 4.2)  # inches: 900 x 420 px at CHART_DPI
CHART_DPI = 100
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
    """The chart, the PDF and the caption of a report; the chart is drawn once, for the PNG and the PDF."""
    stem = f"expenses-{report.month:%Y-%m}"
    png = _png(chart_pixels(report, language))
    return RenderedReport(
        png=png,
        pdf=render_pdf(report, language, chart_png=png),
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


# The characters the pictures use: Latin and Cyrillic, digits, punctuation, the currency signs money.py
# writes (those DejaVu Sans has). The fonts are cut down to these once per process (`_report_fonts`): a PDF
# embeds a subset of each font it uses, and fontTools reads the whole font file to cut it, which for the
# full DejaVu Sans (6,000 glyphs, 750 kB) cost more than everything else in a report together (make bench).
FONT_CHARACTERS = (
    "".join(chr(code) for code in range(0x20, 0x7F))
    + "".join(chr(code) for code in range(0xA0, 0x180))
    + "".join(chr(code) for code in range(0x400, 0x460))
    + "–—‘’“”„…•€₽₴₸₩₺₫₪₹฿№−"
)
FONT_FAMILY = "DejaVu Sans Report"  # the bundled DejaVu Sans, cut down to FONT_CHARACTERS


def _report_fonts() -> dict[str, str]:
    """DejaVu Sans and DejaVu Sans Bold cut down to FONT_CHARACTERS, registered with matplotlib under
    FONT_FAMILY; written once to the temporary directory (Lambda's /tmp) and reused while it is there."""
    import os
    import tempfile
    from pathlib import Path

    import matplotlib
    from fontTools import subset
    from matplotlib import font_manager

    directory = Path(tempfile.gettempdir()) / "expensebot-report-fonts"
    directory.mkdir(exist_ok=True)
    paths = {}
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf"):
        target = directory / name.replace("DejaVuSans", "DejaVuSansReport")
        if not target.exists():
            options = subset.Options()
            options.layout_features = []  # no ligatures or kerning tables: fewer bytes, faster to cut again
            options.name_IDs = ["*"]
            options.notdef_outline = True
            font = subset.load_font(str(Path(matplotlib.get_data_path(), "fonts", "ttf", name)), options)
            subsetter = subset.Subsetter(options)
            subsetter.populate(text=FONT_CHARACTERS)
            subsetter.subset(font)
            # A family name of its own, so matplotlib never mistakes it for the full font.
            for record in font["name"].names:
                if record.nameID in (1, 4, 16):
                    record.string = f"{record.toUnicode()} Report"
                elif record.nameID == 6:
                    record.string = f"{record.toUnicode()}-Report"
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            font.save(str(partial))
            partial.replace(target)  # atomic: another process never reads half a font
        font_manager.fontManager.addfont(str(target))
        paths[name] = str(target)
    return paths


_font_paths: dict[str, str] = {}  # the cut-down fonts' files, by their original file's name


@cache
def _pyplot() -> Any:
    """matplotlib, configured once: Agg, the cut-down DejaVu Sans, fonts embedded as TrueType (Type 42) so
    the PDF's Cyrillic is text that can be searched and copied."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # "FFTM NOT subset" on every PDF
    _font_paths.update(_report_fonts())
    matplotlib.rcParams.update({
        "font.family": FONT_FAMILY,
        "font.size": 9,
        "pdf.fonttype": 42,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    from matplotlib.figure import Figure

    return Figure


_figures = threading.local()  # the chart's reused figure, per thread (Lambda runs one report at a time)


def _money(amount: Decimal, code: str, language: str) -> str:
    return _replace_missing(format_money(amount, code, language))


def _replace_missing(text: str) -> str:
    for sign, iso in _MISSING_GLYPHS.items():
        text = text.replace(sign, iso)
    return text


def _signed(amount: Decimal, code: str, language: str) -> str:
    return _replace_missing(signed_money(amount, code, language))


def chart_slices(
    categories: Sequence[CategorySpend], language: str, limit: int = CHART_SLICES
) -> list[tuple[str, Decimal]]:
    """The doughnut's slices, largest first: `limit` categories by name, the rest added up as "other"."""
    slices = [(category_name(language, spend.category), spend.amount) for spend in categories[:limit]]
    rest = sum((spend.amount for spend in categories[limit:]), Decimal(0))
    if rest:
        slices.append((t(language, "chart_other"), rest))
    return slices


# ---------------------------------------------------------------- the chart


class _Chart:
    """The chart's figure, built once per process and redrawn per report: its axes, ticks and titles stay,
    and only the report's artists (the doughnut's wedges, the legend, the bars) are replaced. Building axes
    and their ticks took most of a chart's time; the days' bars are one PolyCollection, not 31 patches."""

    def __init__(self) -> None:
        from matplotlib.collections import PolyCollection

        figure = _pyplot()(figsize=CHART_SIZE, dpi=CHART_DPI)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(figure)
        self.figure = figure
        self.title = figure.suptitle("", fontsize=11, weight="bold")
        # The doughnut on the left, its legend beside it, the days' bars on the right.
        self.doughnut = figure.add_axes((0.01, 0.06, 0.3, 0.78))
        self.doughnut.set_aspect("equal")
        self.doughnut.set_axis_off()
        self.doughnut.set_xlim(-1.05, 1.05)
        self.doughnut.set_ylim(-1.05, 1.05)
        self.doughnut_title = self.doughnut.text(0, 1.12, "", ha="center", va="bottom", fontsize=10)
        self.centre = self.doughnut.text(0, 0, "", ha="center", va="center", fontsize=8.5, weight="bold")
        self.days = figure.add_axes((0.58, 0.1, 0.4, 0.72))
        self.days.tick_params(labelsize=8)
        self.bars = PolyCollection([], facecolors=PALETTE[0], edgecolors="none")
        self.days.add_collection(self.bars)
        self.legend: Any = None
        self.wedges: list[Any] = []

    def draw(self, report: MonthlyReport, language: str) -> Any:
        from matplotlib.patches import Wedge

        cm = report.main
        self.title.set_text(t(language, "chart_title", month=month_name(language, report.month.month),
                              year=report.month.year, total=_money(cm.total, cm.currency, language)))
        self.doughnut_title.set_text(t(language, "chart_categories"))
        for wedge in self.wedges:
            wedge.remove()
        if self.legend is not None:
            self.legend.remove()
            self.legend = None
        slices = chart_slices(cm.categories, language)
        if slices:
            total = sum((amount for _, amount in slices), Decimal(0))
            self.wedges, angle = [], 90.0
            for (_, amount), colour in zip(slices, PALETTE, strict=False):
                sweep = float(amount / total) * 360
                self.wedges.append(Wedge((0, 0), 1, angle - sweep, angle, width=0.38, facecolor=colour,
                                         edgecolor="white", linewidth=0.8))
                angle -= sweep
            self.centre.set_text(_money(cm.total, cm.currency, language))
            labels = [f"{_shorten(name)} — {format_tenths(amount * 100 / total, language)} %"
                      for name, amount in slices]
        else:
            # A month without spending (incomes only, or an empty month asked for): an empty ring that says
            # so, rather than a blank space or a failed draw.
            self.wedges = [Wedge((0, 0), 1, 0, 360, width=0.38, facecolor="#e0e0e0")]
            self.centre.set_text(t(language, "chart_no_expenses"))
            labels = []
        for wedge in self.wedges:
            self.doughnut.add_patch(wedge)
        if labels:
            self.legend = self.figure.legend(self.wedges, labels, loc="center left", bbox_to_anchor=(0.31, 0.45),
                                             frameon=False, fontsize=8.5, handlelength=1, handletextpad=0.5)
        self._draw_days(cm, language)
        self.figure.canvas.draw()
        import numpy as np

        return np.asarray(self.figure.canvas.buffer_rgba())[:, :, :3].copy()

    def _draw_days(self, cm: CurrencyMonth, language: str) -> None:
        self.days.set_title(t(language, "chart_days", currency=cm.currency), fontsize=10)
        count = len(cm.daily)
        half = 0.375
        self.bars.set_verts([
            ((day - half, 0), (day - half, float(amount)), (day + half, float(amount)), (day + half, 0))
            for day, amount in enumerate(cm.daily, start=1) if amount
        ])
        self.days.set_xlim(0.3, count + 0.7)
        self.days.set_xticks([1, 5, 10, 15, 20, 25, count])
        highest = float(max(cm.daily, default=Decimal(0)))
        if highest:
            self.days.set_ylim(0, highest * 1.05)
            self.days.yaxis.set_major_locator(_locator())
        else:
            self.days.set_ylim(0, 1)
            self.days.set_yticks([])


def _locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=6)


def chart_pixels(report: MonthlyReport, language: str) -> Any:
    """The chart of the user's main currency (spending per category and per day), drawn: an RGB array."""
    chart = getattr(_figures, "chart", None)
    if chart is None:
        chart = _Chart()
        _figures.chart = chart
    return chart.draw(report, language)


def render_chart_png(report: MonthlyReport, language: str) -> bytes:
    return _png(chart_pixels(report, language))


def _png(pixels: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # RGB, not RGBA (the chart is opaque), and zlib level 3: a third of the default level's time for a few
    # percent more bytes (make bench).
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


# ---------------------------------------------------------------- the PDF

# A block of the PDF: a heading and its rows, each row a tuple of cells (the first on the left, the others
# right-aligned in their columns).
_Block = tuple[str, list[tuple[str, ...]]]


def render_pdf(report: MonthlyReport, language: str, chart_png: bytes | None = None) -> bytes:
    """The month in a document: the chart, then per currency a table of categories with shares, incomes and
    the balance, the change against the previous month; budgets; the last six months per currency.

    `chart_png` (render_report passes the PNG it just made) goes in as an image, as it is. The document is
    written by report_pdf, not matplotlib's PDF backend: that one laid out and subset its fonts again for
    every document, three quarters of a report's time (make bench)."""
    from expensebot.jobs.report_pdf import A4, Document, load_font, read_png

    if chart_png is None:
        chart_png = render_chart_png(report, language)
    _pyplot()  # the fonts
    document = Document(
        fonts={"F1": load_font(_font_paths["DejaVuSans.ttf"]), "F2": load_font(_font_paths["DejaVuSansMono.ttf"])},
        title=t(language, "pdf_title", month=month_name(language, report.month.month), year=report.month.year),
    )
    left, width, top_margin, bottom_margin = 36.0, A4[0] - 72.0, A4[1] - 40.0, 40.0
    document.new_page()
    document.text(left, top_margin - 16, document.title, font="F1", size=16)
    png = read_png(chart_png)
    height = width * png.height / png.width
    document.image(png, left, top_margin - 30 - height, width, height)
    y = top_margin - 30 - height - 16
    for heading, rows in _pdf_blocks(report, language):
        table = [row for row in rows if len(row) > 1]
        sentences = [row[0] for row in rows if len(row) == 1]
        needed = 22 + PDF_LEADING * (len(table) + len(sentences) + 1)
        if y - needed < bottom_margin and y < top_margin - 1:
            document.new_page()
            y = top_margin
        y -= 14
        document.text(left, y, heading, font="F1", size=12, colour=(0.12, 0.23, 0.36))
        y -= 8
        for line in _table_lines(table) if table else []:
            y -= PDF_LEADING
            document.text(left + 12, y, line, font="F2", size=8.5)
        if table:
            y -= 4
        for sentence in sentences:
            y -= PDF_LEADING
            document.text(left + 12, y, _replace_missing(sentence), font="F1", size=9)
        y -= 10
    return document.write()


PDF_LEADING = 12.5  # points between two lines of the PDF's tables and sentences


def _table_lines(rows: Sequence[tuple[str, ...]], width: int = 78) -> list[str]:
    """Rows as fixed-width lines: the first cell on the left, the others right-aligned in columns as wide as
    their widest cell."""
    columns = max(len(row) for row in rows)
    widths = [max(len(row[i]) if i < len(row) else 0 for row in rows) for i in range(columns)]
    first = max(12, min(width - sum(widths[1:]) - 2 * (columns - 1), widths[0]))
    return [
        "  ".join([_shorten(row[0], first).ljust(first)]
                  + [(row[i] if i < len(row) else "").rjust(widths[i]) for i in range(1, columns)]).rstrip()
        for row in rows
    ]


def _number(amount: Decimal, code: str, language: str) -> str:
    """An amount without its currency sign (the table's heading names the currency)."""
    return format_money(amount, code, language).removesuffix(currency(code).symbol).rstrip(" \u00a0")


def _pdf_blocks(report: MonthlyReport, language: str) -> Iterator[_Block]:
    previous = month_name(language, previous_month(report.month).month)
    for cm in report.currencies:
        if not (cm.expense_count or cm.income_count):
            continue

        def money(amount: Decimal, code: str = cm.currency) -> str:
            return _money(amount, code, language)

        def number(amount: Decimal, code: str = cm.currency) -> str:
            return _number(amount, code, language)

        rows: list[tuple[str, ...]] = [
            (t(language, "pdf_category"), t(language, "pdf_amount"), t(language, "pdf_share"))
        ]
        rows += [(category_name(language, spend.category), number(spend.amount),
                  f"{format_tenths(spend.share, language)} %") for spend in cm.categories]
        rows.append((t(language, "pdf_total_expenses", count=cm.expense_count), number(cm.total), ""))
        if cm.income_count:
            rows += [(category_name(language, spend.category), number(spend.amount),
                      f"{format_tenths(spend.share, language)} %") for spend in cm.income_categories]
            rows.append((t(language, "pdf_total_incomes", count=cm.income_count), number(cm.income), ""))
            rows.append((t(language, "pdf_balance"), ("+" if cm.balance > 0 else "") + number(cm.balance), ""))
        if cm.change_percent is None:
            rows.append((t(language, "report_previous_none", month=previous),))
        else:
            rows.append((t(language, "report_previous", month=previous, total=money(cm.previous_total)),))
            rows.append((t(language, "report_change", amount=_signed(cm.change, cm.currency, language),
                           percent=format_tenths(cm.change_percent, language, signed=True)),))
        yield (t(language, "pdf_currency", currency=_currency_label(cm.currency)), rows)
    if report.budgets:
        yield (t(language, "report_budgets").rstrip(":"),
               [(_replace_missing(budget_line(budget, language)),) for budget in report.budgets])
    for code in dict.fromkeys(entry.currency for entry in report.history):
        rows = [(t(language, "pdf_month"), t(language, "pdf_expenses"), t(language, "pdf_incomes"))]
        rows += [(f"{month_name(language, entry.month.month)} {entry.month.year}",
                  _number(entry.expenses, code, language), _number(entry.incomes, code, language))
                 for entry in report.history if entry.currency == code]
        yield (t(language, "pdf_history", currency=_currency_label(code)), rows)


def _shorten(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _currency_label(code: str) -> str:
    """RUB (₽): the code, and the sign when the font has it and it differs from the code."""
    symbol = currency(code).symbol
    return code if symbol == code or symbol in _MISSING_GLYPHS else f"{code} ({symbol})"
