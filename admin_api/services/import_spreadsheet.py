"""Reading a CSV file saved by a spreadsheet program as the records of one template (SPEC §8).

What Excel, LibreOffice and Google Sheets write differs, and all of it is accepted:

- encodings: UTF-8 with or without a byte order mark, Windows-1252 (Excel's "CSV" on Western
  Windows), UTF-16 with a byte order mark (Excel's "Unicode text"); anything else is guessed with
  charset-normalizer, or refused with a clear error;
- delimiters: ``,``, ``;`` (Excel in locales with a decimal comma) or tab. The delimiter is the
  one that splits the header line into the most template column names; when no candidate finds
  any, ``csv.Sniffer`` (restricted to those three) decides, else ``,``;
- quoted cells with delimiters, quotes and line breaks inside; blank and delimiter-only rows
  (``;;;;`` that Excel leaves below the data) anywhere are skipped;
- header names in any order and any case, surrounding blanks ignored, and ``zip code`` or
  ``zip-code`` read as ``zip_code``.

The file is streamed: only the current record is held, so memory does not grow with the file.
Records carry the physical line on which they start (the header is line 1), which is what a
spreadsheet program shows as the row number as long as no cell holds a line break.
"""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from admin_api.services.import_templates import Template, unescape_cell

DELIMITERS = (",", ";", "\t")
CHUNK = 1 << 16
SAMPLE_BYTES = 1 << 16
SPOOL_IN_MEMORY = 8 << 20


@dataclass(frozen=True, order=True)
class RowError:
    """One problem of an import: the file line it is on, the column (None: the whole row), why."""

    row: int
    column: str | None
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class Record:
    """One data row: the line it starts on, and the cleaned cell text of each column present."""

    line: int
    cells: dict[str, str]


class SpreadsheetError(Exception):
    """Raised when the file as a whole cannot be read as the template (encoding, header)."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"line {e.row}: {e.message}" for e in errors))


def clean_cell(cell: str) -> str:
    """A cell as the importer uses it: surrounding blanks and an export's formula escape removed."""
    return unescape_cell(cell.strip()).strip()


def header_name(cell: str) -> str:
    """A header cell in canonical form: ``" Zip Code "`` → ``zip_code``."""
    # A UTF-8 byte order mark read as Windows-1252 (a file mixing both) is "ï»¿".
    text = cell.strip().removeprefix("\ufeff").removeprefix("ï»¿").strip()
    return text.lower().replace(" ", "_").replace("-", "_")


def seekable(source: BinaryIO) -> BinaryIO:
    """``source`` itself when it can seek, else a copy spooled to a temporary file."""
    try:
        if source.seekable():
            return source
    except (AttributeError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    while chunk := source.read(CHUNK):
        spool.write(chunk)
    spool.seek(0)
    return spool


def _decodes(source: BinaryIO, encoding: str) -> bool:
    """True when all of ``source`` decodes as ``encoding`` (read in chunks; memory stays flat)."""
    source.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        while chunk := source.read(CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        source.seek(0)
    return True


def detect_encoding(source: BinaryIO) -> str:
    """The text encoding of ``source``: a byte order mark, else UTF-8, else Windows-1252.

    SpreadsheetError is raised when none of them, nor charset-normalizer's best guess, fits.
    """
    source.seek(0)
    head = source.read(4)
    source.seek(0)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not head.startswith(
        codecs.BOM_UTF32_LE
    ):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8-sig", "cp1252"]
    for encoding in candidates:
        if _decodes(source, encoding):
            return encoding
    from charset_normalizer import from_bytes

    guess = from_bytes(source.read(SAMPLE_BYTES * 16)).best()
    source.seek(0)
    if guess is not None and _decodes(source, guess.encoding):
        return guess.encoding
    raise SpreadsheetError(
        [RowError(1, None, "the file is not text in UTF-8 or Windows-1252; save it as "
                           "\"CSV UTF-8\" from the spreadsheet program")]
    )


def _first_record(sample: str, delimiter: str) -> list[str]:
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                return row
    except csv.Error:
        pass
    return []


def detect_delimiter(sample: str, template: Template) -> str:
    """The delimiter that splits the header (first non-blank record of ``sample``) best."""
    known = set(template.names)

    def score(delimiter: str) -> tuple[int, int]:
        cells = [header_name(c) for c in _first_record(sample, delimiter)]
        return (sum(1 for c in cells if c in known), len(cells))

    scores = {d: score(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: scores[d])  # max keeps the first of equals: "," wins ties
    if scores[best][0] > 0:
        return best
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


class Spreadsheet:
    """A CSV file opened against a template: its encoding, delimiter, header, then its records.

    SpreadsheetError is raised by the constructor when the file is empty, undecodable, or its
    header has an unknown, repeated or missing required column (every such problem is listed).
    """

    def __init__(self, source: BinaryIO, template: Template) -> None:
        self.template = template
        self._source = seekable(source)
        self._source.seek(0, io.SEEK_END)
        self.size = self._source.tell()
        self._source.seek(0)
        self.encoding = detect_encoding(self._source)
        self.delimiter = detect_delimiter(self._sample(), template)
        self.header_line, self.columns = self._read_header()

    @property
    def present(self) -> frozenset[str]:
        """The template columns this file has."""
        return frozenset(c for c in self.columns if c is not None)

    @property
    def position(self) -> int:
        """Bytes of the file read so far (for a progress bar)."""
        try:
            return self._source.tell()
        except (ValueError, OSError):
            return self.size

    def _sample(self) -> str:
        self._source.seek(0)
        raw = self._source.read(SAMPLE_BYTES)
        self._source.seek(0)
        return codecs.getincrementaldecoder(self.encoding)("replace").decode(raw, final=False)

    def _rows(self) -> Iterator[tuple[int, list[str] | csv.Error]]:
        """(start line, raw cells) of every record, or (start line, the csv.Error) for a broken one."""
        self._source.seek(0)
        text = io.TextIOWrapper(self._source, encoding=self.encoding, newline="")
        reader = csv.reader(text, delimiter=self.delimiter, strict=True)
        try:
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield start, exc
                    continue
                yield start, row
        finally:
            text.detach()

    def _read_header(self) -> tuple[int, list[str | None]]:
        names = self.template.names
        for line, row in self._rows():
            if isinstance(row, csv.Error):
                raise SpreadsheetError([RowError(line, None, f"the header line is not valid CSV: {row}")])
            if not any(cell.strip() for cell in row):
                continue
            errors: list[RowError] = []
            columns: list[str | None] = []
            for cell in row:
                name = header_name(cell)
                if not name:
                    columns.append(None)
                elif name not in names:
                    errors.append(RowError(line, cell.strip(), f"unknown column {cell.strip()!r}; "
                                           f"the {self.template.filename} template has: {', '.join(names)}"))
                    columns.append(None)
                elif name in columns:
                    errors.append(RowError(line, name, f"column {name!r} appears twice in the header"))
                    columns.append(None)
                else:
                    columns.append(name)
            for name in self.template.required:
                if name not in columns:
                    errors.append(RowError(line, name, f"required column {name!r} is missing from the header"))
            if errors:
                raise SpreadsheetError(errors)
            return line, columns
        raise SpreadsheetError([RowError(1, None, "the file is empty; its first line must be the "
                                         f"header: {','.join(names)}")])

    def records(self) -> Iterator[Record | RowError]:
        """Every non-blank data row as a Record, or a RowError for a row that cannot be read."""
        width = len(self.columns)
        for line, row in self._rows():
            if line <= self.header_line:
                continue
            if isinstance(row, csv.Error):
                yield RowError(line, None, f"not valid CSV: {row} (a quote inside a cell must be "
                                           "doubled, and a cell with quotes quoted as a whole; "
                                           "or a quote is never closed)")
                continue
            cells = [clean_cell(cell) for cell in row]
            if not any(cells):
                continue
            extra = [i for i, cell in enumerate(cells) if cell and (i >= width or self.columns[i] is None)]
            if extra:
                if extra[0] >= width:
                    message = (f"this row has {len(cells)} cells but the header has {width} columns "
                               "(a value containing the delimiter must be in quotes)")
                else:
                    message = f"a value in column {extra[0] + 1}, which has no header name"
                yield RowError(line, None, message)
                continue
            values = {name: (cells[i] if i < len(cells) else "")
                      for i, name in enumerate(self.columns) if name is not None}
            yield Record(line, values)
