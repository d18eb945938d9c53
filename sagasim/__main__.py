"""``python -m sagasim``: the command line."""

from .cli import main

raise SystemExit(main())
