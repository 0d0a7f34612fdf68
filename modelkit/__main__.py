"""``python -m modelkit batch ...``: see modelkit.batch.cli."""

from modelkit.batch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
