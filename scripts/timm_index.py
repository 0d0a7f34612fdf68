"""Write modelkit/models/timm_index.json.gz (the timm source's index for the installed timm:
names, tags, per-tag preprocessing and licence) and modelkit/models/timm_facts.json.gz (each
architecture's parameter count and feature levels, built on the meta device: ~5-10 min on two
cores). Run after changing the pinned timm version:

    .venv/bin/python scripts/timm_index.py [--index-only]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from modelkit.models.timm_source import (  # noqa: E402
    PREFIX,
    SHIPPED_FACTS,
    SHIPPED_INDEX,
    build_index,
)


def _write(path: Path, data: dict) -> None:
    # key order matters (a default tag comes first): no sort_keys
    raw = json.dumps(data, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))


def build_facts(archs) -> dict:
    from modelkit.models.info import build_timm_facts
    from modelkit.models.registry import get_entry

    facts = {}
    warnings.filterwarnings("ignore")
    for i, arch in enumerate(archs):
        facts[arch] = build_timm_facts(get_entry(PREFIX + arch))
        if i % 100 == 0:
            print(f"  facts: {i}/{len(archs)}", flush=True)
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-only", action="store_true", help="leave the facts file alone")
    args = parser.parse_args()
    data = build_index()
    _write(SHIPPED_INDEX, data)
    print(f"{SHIPPED_INDEX}: timm {data['timm']}, {len(data['archs'])} architectures")
    if not args.index_only:
        facts = build_facts(list(data["archs"]))
        _write(SHIPPED_FACTS, {"timm": data["timm"], "facts": facts})
        failed = sorted(a for a, f in facts.items() if "error" in f)
        print(f"{SHIPPED_FACTS}: {len(facts) - len(failed)} built, {len(failed)} failed: {failed}")


if __name__ == "__main__":
    main()
