"""``python -m modelkit batch ...``: see modelkit.batches.cli."""

from modelkit.batches.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
