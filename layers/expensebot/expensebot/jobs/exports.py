"""reports.send_export — the bot's /export [YYYY-MM]: a month's expenses and incomes as a CSV and an XLSX file.

The webhook only checks that the month has anything and enqueues this task on the reports queue; building the
files here keeps the webhook's reply fast and its cold start free of openpyxl, which is imported only inside
`build_xlsx` (the reports worker pays for it on its first export, no other function ever).

The two files carry the same rows (date, type, category, description, amount, currency), oldest first:
- the CSV is for any spreadsheet and for scripts. It is UTF-8 with a byte order mark, because Excel reads a
  CSV without one in the system's legacy code page and shows Cyrillic as mojibake. A Russian user's CSV is
  `;`-separated with a decimal comma, an English user's `,`-separated with a decimal point: that is what Excel
  expects in each locale when the file is opened with a double click (a Russian Excel uses the comma for
  decimals, so its list separator is `;`), and a spreadsheet that splits the columns and reads the amounts as
  numbers is what the user asked for. Dates are ISO (2026-03-01), which every locale reads as a date.
- the XLSX holds real dates and numbers, whatever the locale, with each currency's decimals, and a second
  sheet with the totals per currency (expenses, incomes, balance): amounts in different currencies are never
  added together.

One export per request: the message goes through the delivery claims under `export_request:{request_id}`, so a
redelivered task sends each file once."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from expensebot.bootstrap import Runtime
from expensebot.delivery import Attachment, Delivery, OutboundMessage, deliver
from expensebot.money import currency, quantum, totals_by_currency
from expensebot.months import FirstOfMonth
from expensebot.tasks import task
from expensebot.texts import category_name, language_for, month_name, t

KIND = "export"  # notifications.kind
CSV_MIME = "text/csv"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ExportRequest(BaseModel):
    """One /export on the reports queue."""

    user_id: int
    chat_id: int
    language_code: str | None = None
    month: FirstOfMonth
    request_id: str = Field(min_length=1, max_length=200)

    @property
    def dedupe_key(self) -> str:
        return f"export_request:{self.request_id}"


@dataclass(frozen=True)
class Entry:
    """One row of the export: an expense or an income."""

    day: date
    is_income: bool
    category: str
    description: str
    amount: Decimal
    currency: str


def month_bounds(month: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the application's zone."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return (datetime(month.year, month.month, 1, tzinfo=tz), datetime(following.year, following.month, 1, tzinfo=tz))


# Both tables in one statement, in the order they happened; each reads its (user_id, time) index.
_MONTH_ENTRIES = """
SELECT at, is_income, category, description, amount, currency FROM (
    SELECT spent_at AS at, false AS is_income, category, description, amount, currency, id
      FROM expenses WHERE user_id = %(user_id)s AND spent_at >= %(start)s AND spent_at < %(end)s
    UNION ALL
    SELECT received_at, true, category, description, amount, currency, id
      FROM incomes WHERE user_id = %(user_id)s AND received_at >= %(start)s AND received_at < %(end)s
) entries
ORDER BY at, is_income, id
"""

_MONTH_HAS_ENTRIES = """
SELECT EXISTS (SELECT 1 FROM expenses WHERE user_id = %(user_id)s AND spent_at >= %(start)s AND spent_at < %(end)s)
    OR EXISTS (SELECT 1 FROM incomes WHERE user_id = %(user_id)s AND received_at >= %(start)s
                                        AND received_at < %(end)s) AS any
"""


def month_has_entries(cur: Any, *, user_id: int, month: date, tz: ZoneInfo) -> bool:
    start, end = month_bounds(month, tz)
    cur.execute(_MONTH_HAS_ENTRIES, {"user_id": user_id, "start": start, "end": end})
    return bool(cur.fetchone()["any"])


def month_entries(runtime: Runtime, user_id: int, month: date) -> list[Entry]:
    tz = runtime.settings.tz
    start, end = month_bounds(month, tz)
    rows = runtime.db.fetch_all(_MONTH_ENTRIES, {"user_id": user_id, "start": start, "end": end})
    return [
        Entry(
            day=row["at"].astimezone(tz).date(),
            is_income=row["is_income"],
            category=row["category"],
            description=row["description"],
            amount=row["amount"],
            currency=row["currency"].strip(),
        )
        for row in rows
    ]


def _headers(language: str) -> list[str]:
    return [t(language, f"export_column_{name}") for name in
            ("date", "type", "category", "description", "amount", "currency")]


def _type_name(language: str, entry: Entry) -> str:
    return t(language, "export_type_income" if entry.is_income else "export_type_expense")


def build_csv(entries: Sequence[Entry], language: str) -> bytes:
    """The CSV's bytes (see the module's docstring for the encoding, separator and decimal mark)."""
    russian = language == "ru"
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";" if russian else ",", lineterminator="\r\n")
    writer.writerow(_headers(language))
    for entry in entries:
        amount = f"{entry.amount.quantize(quantum(entry.currency)):f}"
        writer.writerow([
            entry.day.isoformat(),
            _type_name(language, entry),
            category_name(language, entry.category),
            entry.description,
            amount.replace(".", ",") if russian else amount,
            entry.currency,
        ])
    return out.getvalue().encode("utf-8-sig")


def build_xlsx(entries: Sequence[Entry], language: str, first_currency: str | None, created: datetime) -> bytes:
    """The workbook's bytes: the rows, then a sheet of totals per currency."""
    # Imported here, not at the module's top: only an export needs it (see the module's docstring).
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    def text(value: str) -> str:
        # XML 1.0 cannot hold most control characters, and openpyxl refuses them rather than drop them: one
        # stray \x0b in a description would fail the whole export.
        return ILLEGAL_CHARACTERS_RE.sub("", value)

    book = Workbook()
    book.properties.creator = "ExpenseBot"
    # openpyxl stores naive UTC times in the document's properties.
    book.properties.created = book.properties.modified = created.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    sheet = book.active
    assert sheet is not None
    sheet.title = t(language, "export_sheet_entries")
    sheet.append(_headers(language))
    date_format = "DD.MM.YYYY" if language == "ru" else "YYYY-MM-DD"
    for entry in entries:
        sheet.append([entry.day, _type_name(language, entry), text(category_name(language, entry.category)),
                      text(entry.description), entry.amount, entry.currency])
        row = sheet.max_row
        sheet.cell(row, 1).number_format = date_format
        sheet.cell(row, 5).number_format = _amount_format(entry.currency)
        for column in (3, 4):
            # openpyxl takes a string that starts with "=" for a formula: "=)" typed as a description would
            # open as a broken formula. What the user wrote stays text.
            sheet.cell(row, column).data_type = "s"
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:F{sheet.max_row}"
    for column, width in enumerate((12, 10, 20, 40, 14, 9), start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width

    totals = book.create_sheet(t(language, "export_sheet_totals"))
    totals.append([t(language, f"export_column_{name}") for name in ("currency", "expenses", "incomes", "balance")])
    spent = dict(totals_by_currency(((e.currency, e.amount) for e in entries if not e.is_income), first_currency))
    received = dict(totals_by_currency(((e.currency, e.amount) for e in entries if e.is_income), first_currency))
    codes = [code for code, _ in totals_by_currency(((e.currency, e.amount) for e in entries), first_currency)]
    for code in codes:
        expenses, incomes = spent.get(code, Decimal(0)), received.get(code, Decimal(0))
        totals.append([code, expenses, incomes, incomes - expenses])
        for column in (2, 3, 4):
            totals.cell(totals.max_row, column).number_format = _amount_format(code)
    for cell in totals[1]:
        cell.font = Font(bold=True)
    for column, width in enumerate((9, 16, 16, 16), start=1):
        totals.column_dimensions[get_column_letter(column)].width = width

    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _amount_format(code: str) -> str:
    decimals = currency(code).minor_units
    return "#,##0" + ("." + "0" * decimals if decimals else "")


def export_caption(entries: Sequence[Entry], language: str, month: date) -> str:
    expenses = sum(1 for e in entries if not e.is_income)
    return t(language, "export_caption", month=month_name(language, month.month), year=month.year,
             expenses=expenses, incomes=len(entries) - expenses)


@task("reports.send_export", args=ExportRequest, sends=(KIND,))
def send_export(runtime: Runtime, request: ExportRequest) -> Delivery:
    """Send a user a month's expenses and incomes as a CSV and an XLSX file."""
    language = language_for(request.language_code)
    entries = month_entries(runtime, request.user_id, request.month)
    message = OutboundMessage(dedupe_key=request.dedupe_key, kind=KIND, chat_id=request.chat_id,
                              user_id=request.user_id, text="")
    if not entries:
        # The month had entries when the user asked and has none now (deleted since): say so, send no files.
        text = t(language, "export_empty", month=month_name(language, request.month.month), year=request.month.year)
        return deliver(runtime, replace(message, text=text))
    rows = runtime.db.fetch_all("SELECT currency FROM users WHERE user_id = %s", (request.user_id,))
    first_currency = rows[0]["currency"].strip() if rows else None
    name = t(language, "export_file_name", month=f"{request.month:%Y-%m}")
    files = (
        Attachment("sendDocument", f"{name}.csv", build_csv(entries, language), CSV_MIME,
                   caption=export_caption(entries, language, request.month)),
        Attachment("sendDocument", f"{name}.xlsx", build_xlsx(entries, language, first_currency,
                                                              runtime.clock.now()), XLSX_MIME),
    )
    return deliver(runtime, replace(message, attachments=files))
