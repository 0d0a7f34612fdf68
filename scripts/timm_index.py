"""Write modelkit/models/timm_index.json.gz: the timm source's index for the installed timm
(names, tags, per-tag preprocessing and licence). Run after changing the pinned timm version:

    .venv/bin/python scripts/timm_index.py
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from modelkit.models.timm_source import SHIPPED_INDEX, build_index  # noqa: E402


def main() -> None:
    data = build_index()
    raw = json.dumps(data, separators=(",", ":")).encode()
    SHIPPED_INDEX.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"{SHIPPED_INDEX}: timm {data['timm']}, {len(data['archs'])} architectures")


if __name__ == "__main__":
    main()
