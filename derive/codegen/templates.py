"""The Jinja environment over templates/ (shipped as the package `derive.templates`)."""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import jinja2


def template_dir() -> Path:
    """templates/ of the installed package, or of the source checkout when run from it."""
    try:
        import derive.templates as package  # only an installed derive has it (see the except)

        return Path(package.__file__).parent
    except ImportError:  # running from a checkout without installing (PYTHONPATH=.)
        return Path(__file__).resolve().parents[2] / "templates"


def docstring_text(value: object) -> str:
    r"""`value` as text that reads back unchanged inside a (non-raw) triple-quoted docstring.

    The one escape every template applies to what it pastes into a docstring (`{{ title|doc }}`):
    a user's title, reference or file name may hold backslashes, double quotes (three of them end
    the docstring) or control characters (a NUL makes the module unparsable). Backslashes and double
    quotes get a backslash; control characters (newlines included) become \x.. or \u.... escapes.
    The docstring's value is the original text; text without those characters is unchanged.
    """
    out = []
    for char in str(value):
        if char in ("\\", '"'):
            out.append("\\" + char)
        elif unicodedata.category(char) in ("Cc", "Cs") or char in ("\u2028", "\u2029"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


@functools.cache
def environment() -> jinja2.Environment:
    """Deterministic rendering: strict undefined names, no autoescape (this is Python, not HTML).

    The `doc` filter (docstring_text) escapes text pasted into docstrings."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["doc"] = docstring_text
    return env


def render(template: str, **context: object) -> str:
    """Render `template` (a file name under templates/) with `context`."""
    return environment().get_template(template).render(**context)
