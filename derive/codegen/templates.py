"""The Jinja environment over templates/ (shipped as the package `derive.templates`)."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2


def template_dir() -> Path:
    """templates/ of the installed package, or of the source checkout when run from it."""
    try:
        import derive.templates as package

        return Path(package.__file__).parent
    except ImportError:  # running from a checkout without installing (PYTHONPATH=.)
        return Path(__file__).resolve().parents[2] / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """Deterministic rendering: strict undefined names, no autoescape (this is Python, not HTML)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, **context: object) -> str:
    """Render `template` (a file name under templates/) with `context`."""
    return environment().get_template(template).render(**context)
