"""`python -m derive` runs the command-line interface."""

from derive.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
