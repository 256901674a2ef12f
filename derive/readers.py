"""One safe reader for the structured files a user hands to derive: run files, specs, genotypes.

Every command that reads a JSON, TOML or CSV file it did not just write goes through here, so a
damaged or hostile file is refused alike: a UserError (one line, exit 2) naming the file and what is
wrong, before anything is written. The checks, in order:

- the file: a regular file (a FIFO would block, a device never end) of at most `max_bytes` bytes;
- the text: strict UTF-8;
- the structure, scanned without recursion before any parser sees it: brackets nested at most
  MAX_DEPTH deep (the parsers recurse and overflow the stack near 1,000), dotted TOML keys at most
  MAX_DEPTH parts long, numbers of at most MAX_DIGITS digits (Python refuses to convert integers of
  more than 4,300 digits);
- CSV: a field of more than csv.field_size_limit() characters (131,072) or a NUL byte is refused
  with its line number;
- the values: `field` reads one typed entry of a parsed mapping ("options.seed" as an int).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

import tomllib

from derive.errors import UserError

MAX_DEPTH = 64  # the deepest run file (a probe) nests 3 levels, a genotype 4, a spec 3
MAX_DIGITS = 100  # a seed (the largest integer in a run file) has at most 20 digits
RUN_FILE_BYTES = 256 * 2**20  # steps.csv of 300 ImageNet epochs (1.5 million steps) is about 90 MB
SPEC_BYTES = 1_000_000  # an algorithm spec is a page of TOML

_JSON_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_TOML_STRINGS = re.compile(
    r'"""(?:[^\\]|\\[\s\S])*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*'
)
_BRACKET_RUNS = re.compile(r"[\[{]+|[\]}]+")
_LONG_NUMBER = re.compile(rf"[0-9][0-9_]{{{MAX_DIGITS},}}")
_LONG_KEY = re.compile(rf"(?:[\w-]+[ \t]*\.[ \t]*){{{MAX_DEPTH},}}")


def _name(path: str | os.PathLike[str]) -> str:
    return repr(os.fspath(path))


def read_bytes(path: str | os.PathLike[str], max_bytes: int = RUN_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; UserError naming it otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot read {_name(path)}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    with contextlib.closing(os.fdopen(fd, "rb")) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{_name(path)} is not a regular file")
        if info.st_size > max_bytes:
            raise UserError(
                f"{_name(path)} has {info.st_size:,} bytes, more than this file can need "
                f"(at most {max_bytes:,})"
            )
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise UserError(f"cannot read {_name(path)}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # it grew while we read it
        raise UserError(f"{_name(path)} has more than {max_bytes:,} bytes")
    return data


def decode(data: bytes, where: str) -> str:
    """`data` as UTF-8 text; UserError naming `where` and the first bad byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{where!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,})"
        ) from None


def read_text(path: str | os.PathLike[str], max_bytes: int = RUN_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes` bytes (see read_bytes, decode)."""
    return decode(read_bytes(path, max_bytes), os.fspath(path))


def check_structure(skeleton: str, where: str) -> None:
    """UserError if `skeleton` (a text with its strings and comments blanked out) nests brackets
    deeper than MAX_DEPTH or holds a number of more than MAX_DIGITS digits. No recursion: one pass
    over the runs of brackets."""
    depth = 0
    for match in _BRACKET_RUNS.finditer(skeleton):
        run = match.group()
        depth += len(run) if run[0] in "[{" else -len(run)
        if depth > MAX_DEPTH:
            raise UserError(f"{where!r} nests too deeply (more than {MAX_DEPTH} levels)")
    number = _LONG_NUMBER.search(skeleton)
    if number:
        raise UserError(
            f"{where!r} has a number of {len(number.group()):,} digits (at most {MAX_DIGITS})"
        )


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text):,} digits (at most {MAX_DIGITS})")
    return int(text)


def parse_json(text: str, where: str) -> object:
    """The JSON value of `text` (the file `where`); UserError if invalid or out of bounds."""
    check_structure(re.sub(_JSON_STRING, '""', text), where)
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:  # bounds checked above; kept as a last guard
        raise UserError(f"{where!r} is not usable JSON: {exc}") from None


def read_json(path: str | os.PathLike[str], max_bytes: int = RUN_FILE_BYTES) -> object:
    """The JSON value of the file `path` (see read_text, parse_json)."""
    return parse_json(read_text(path, max_bytes), os.fspath(path))


def read_json_object(path: str | os.PathLike[str], max_bytes: int = RUN_FILE_BYTES) -> dict:
    """read_json, and UserError unless the value is a JSON object."""
    data = read_json(path, max_bytes)
    if not isinstance(data, dict):
        raise UserError(f"{_name(path)} holds a JSON {_kind(data)}, not an object")
    return data


def parse_toml(text: str, where: str, max_chars: int = SPEC_BYTES) -> dict[str, object]:
    """The TOML document `text` (the file `where`); UserError if invalid or out of bounds.

    Besides check_structure, a dotted key of more than MAX_DEPTH parts is refused (tomllib takes
    time quadratic in its length), and so is an integer of more than MAX_DIGITS digits in any base.
    """
    if len(text) > max_chars:
        raise UserError(f"{where!r} has {len(text):,} characters (at most {max_chars:,})")
    skeleton = _TOML_STRINGS.sub("s", text)
    check_structure(skeleton, where)
    if _LONG_KEY.search(skeleton):
        raise UserError(f"{where!r} has a dotted key of more than {MAX_DEPTH} parts")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    except (ValueError, RecursionError) as exc:  # bounds checked above; kept as a last guard
        raise UserError(f"{where!r} is not usable TOML: {exc}") from None
    _check_values(data, where)
    return data


def _check_values(data: object, where: str) -> None:
    """UserError if a value nests deeper than MAX_DEPTH or an integer has more than MAX_DIGITS
    digits (0x… integers escape the text scan). Iterative: a stack, no recursion."""
    limit = 10**MAX_DIGITS
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UserError(f"{where!r} nests too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= limit:
            raise UserError(f"{where!r} has an integer of more than {MAX_DIGITS} digits")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def csv_rows(text: str, where: str) -> Iterator[list[str]]:
    """The records of CSV `text`; a csv.Error (a field over the size limit, a NUL byte) becomes a
    UserError naming `where` and the line."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UserError(f"{where!r} line {reader.line_num} is malformed ({exc})") from None
        yield record


def read_csv_rows(
    path: str | os.PathLike[str], name: str, max_bytes: int = RUN_FILE_BYTES
) -> tuple[Path, Iterator[list[str]]]:
    """(the file, its CSV records): `path` itself, or `path/name` where `path` is a folder (a run
    directory); UserError if it cannot be read (see read_text, csv_rows)."""
    file = Path(path)
    if file.is_dir():
        file = file / name
    return file, csv_rows(read_text(file, max_bytes), str(file))


def _kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def field(
    data: Mapping[str, object], path: str, kind: type | tuple[type, ...], where: str
) -> object:
    """data[a][b] for path "a.b", checked to be a `kind` (a bool is no int, a NaN no float);
    UserError naming `where` and the entry if it is missing or of another type."""
    import math

    value: object = data
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise UserError(f"{where} lacks {path!r}")
        value = value[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    wrong = isinstance(value, bool) and bool not in kinds
    if wrong or not isinstance(value, kinds) or (isinstance(value, float) and math.isnan(value)):
        raise UserError(f"{where} has a malformed {path!r}: a {_kind(value)}")
    return value


def optional_field(
    data: Mapping[str, object], path: str, kind: type | tuple[type, ...], where: str
) -> object:
    """`field`, but None where the entry (or a table above it) is missing or null."""
    value: object = data
    for key in path.split("."):
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    return field(data, path, kind, where)


__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "RUN_FILE_BYTES",
    "SPEC_BYTES",
    "check_structure",
    "csv_rows",
    "decode",
    "field",
    "optional_field",
    "parse_json",
    "parse_toml",
    "read_bytes",
    "read_csv_rows",
    "read_json",
    "read_json_object",
    "read_text",
]
