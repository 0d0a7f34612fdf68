"""The Python code that reproduces one app setup with modelkit, to copy and run.

Public API::

    make_snippet(run: FormRun, filename: str) -> str

Every value goes into the code through ``repr``, so a strange file name cannot become code.
"""

from __future__ import annotations

from modelkit.app.runs import FormRun


def _args(run: FormRun) -> str:
    parts = [repr(run.settings.name)]
    parts += [f"{k}={v!r}" for k, v in run.settings.create_kwargs().items()]
    return ", ".join(parts)


def make_snippet(run: FormRun, filename: str) -> str:
    """A runnable script: read the file, build the model, print top-k, list feature shapes."""
    setup = run.settings
    out_indices = list(run.out_indices) if run.out_indices is not None else None
    channels = list(setup.channels) if setup.channels is not None else None
    return f"""\
import torch

from modelkit import create_model
from modelkit.images.read import read_image
from modelkit.images.preprocess import preprocess

path = {filename!r}  # your image file
with open(path, "rb") as f:
    image = read_image(f.read(), path)

model = create_model({_args(run)}).eval()
x = preprocess(image, model.data_config, channels={channels!r}, scaling={setup.scaling!r})

with torch.inference_mode():
    probabilities = model(x).softmax(dim=-1)[0]
    levels = model.forward_intermediates(x, out_indices={out_indices!r})

top = probabilities.topk(min({run.top_k!r}, probabilities.numel()))
for p, i in zip(top.values.tolist(), top.indices.tolist()):
    label = model.categories[i] if model.categories else f"class {{i}}"
    print(f"{{label}}: {{p:.1%}}")
levels_info = model.feature_info.get_dicts()
for index, level in zip({out_indices!r} or range(len(levels_info)), levels):
    print(f"level {{index}}", levels_info[index]["module"], tuple(level.shape))
for note in model.adaptations:
    print("adapted:", note)
"""
