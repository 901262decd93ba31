"""Shared file helpers: JSON lines reading with located errors, and atomic writers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mendrepro import atomic


class DataFormatError(ValueError):
    """A data file does not have the expected shape; the message names the file and the place."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        message: str,
        *,
        line: int | None = None,
        record: int | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.record = record
        self.detail = message
        if line is not None:
            where = f"{self.path}:{line}"
        elif record is not None:
            where = f"{self.path}: record {record}"
        else:
            where = self.path
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments would otherwise break pickling (e.g. across worker processes).
        return (_rebuild_error, (self.path, self.detail, self.line, self.record))


def _rebuild_error(path: str, message: str, line: int | None, record: int | None) -> DataFormatError:
    return DataFormatError(path, message, line=line, record=record)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line of a JSON-lines file."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:  # the line and column, not the byte offset of the whole file
                raise DataFormatError(
                    path, f"column {e.start + 1}: byte 0x{raw[e.start]:02x} is not UTF-8", line=lineno
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r\n"))  # the column is then the line's own
            except json.JSONDecodeError as e:
                raise DataFormatError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=lineno) from e
            if not isinstance(obj, dict):
                raise DataFormatError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
            yield lineno, obj


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file of objects; blank lines are skipped."""
    return [obj for _, obj in iter_jsonl(path)]


def require_str_list(obj: dict[str, Any], key: str, path: str | os.PathLike[str], line: int) -> tuple[str, ...]:
    """`obj[key]` as a tuple of strings, or a DataFormatError at `path:line`."""
    if key not in obj:
        raise DataFormatError(path, f"missing field {key!r}", line=line)
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise DataFormatError(path, f"field {key!r} must be a list of strings", line=line)
    return tuple(value)


def require_str(obj: dict[str, Any], key: str, path: str | os.PathLike[str], line: int) -> str:
    """`obj[key]` as a string, or a DataFormatError at `path:line`."""
    if key not in obj:
        raise DataFormatError(path, f"missing field {key!r}", line=line)
    value = obj[key]
    if not isinstance(value, str):
        raise DataFormatError(path, f"field {key!r} must be a string, got {type(value).__name__}", line=line)
    return value


def record_id(obj: dict[str, Any], path: str | os.PathLike[str], line: int) -> str:
    """The record's `id` as a string (KILT ids are strings; integers are tolerated)."""
    value = obj.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataFormatError(path, "field 'id' must be a string", line=line)
    return str(value)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> Path:
    """Write one JSON document atomically (keys in insertion order, so output is deterministic)."""
    return atomic.write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Write one JSON value per line atomically."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic.write_text(path, text)
