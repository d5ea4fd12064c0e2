"""``python -m delaynir`` is the same as the ``delaynir`` command."""

from delaynir.cli import main

raise SystemExit(main())
