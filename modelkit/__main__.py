"""``python -m modelkit batch ...`` and ``python -m modelkit map ...``: see modelkit.batches.cli
and modelkit.scenes.cli."""

from modelkit.scenes.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
