"""The one exception type for bad user input: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (name, expression, option value, path). Never a bug in derive."""

    exit_code = 2


def need(ok: bool, message: str) -> None:
    """Raise UserError(message) unless `ok`: the one-line check every config's validate uses."""
    if not ok:
        raise UserError(message)
