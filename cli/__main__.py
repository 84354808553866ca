"""``python -m cli`` is the ``larr`` command."""

from cli.main import main

raise SystemExit(main())
