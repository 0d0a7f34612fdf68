"""Write modelkit/models/model_sizes.json: the parameter count of every built-in (non-timm)
model, built on the meta device (a few seconds), for the installed torchvision. Search reads it
instead of building the models. Run after changing the pinned torchvision or a builder:

    .venv/bin/python scripts/model_sizes.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torchvision  # noqa: E402

from modelkit.models.info import SHIPPED_SIZES, _meta_facts  # noqa: E402
from modelkit.models.registry import list_models, list_sources  # noqa: E402


def main() -> None:
    names = [n for source in list_sources(lazy=False) for n in list_models(source=source)]
    params = {name: _meta_facts(name, ())[0] for name in sorted(names)}
    data = {"torchvision": torchvision.__version__, "params": params}
    SHIPPED_SIZES.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(params)} models -> {SHIPPED_SIZES}")


if __name__ == "__main__":
    main()
