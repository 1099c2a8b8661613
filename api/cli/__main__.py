"""``python -m api.cli``: the ``soulseer`` command (the crash tests and benches start servers this way)."""

from api.cli.main import main

raise SystemExit(main())
