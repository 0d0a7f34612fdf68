"""The Python code that reproduces a taught head's probabilities from its file alone: build the
base model as the head's setup says, preprocess the image the same way, take the pooled
features of each view, apply the head's weight and bias, average the views' softmax.

    head_snippet(setup, head_path="head.safetensors", image_path="image.png") -> str

Every value enters the code through ``repr``: a strange file name cannot become code.
"""

from __future__ import annotations

from modelkit.runtime.embeddings import VIEW_SETS

# view name -> the same transform as runtime.embeddings, as code on a tensor x
VIEW_CODE = {
    "identity": "x", "hflip": "x.flip(-1)", "vflip": "x.flip(-2)",
    "rot90": "x.rot90(1, (-2, -1))", "rot180": "x.rot90(2, (-2, -1))",
    "rot270": "x.rot90(3, (-2, -1))", "transpose": "x.transpose(-2, -1)",
    "antitranspose": "x.rot90(2, (-2, -1)).transpose(-2, -1)",
}  # fmt: skip


def head_snippet(setup: dict, head_path: str = "head.safetensors", image_path: str = "image.png"):
    """A runnable script that prints the taught classes' probabilities for one image."""
    kwargs = {"pretrained": bool(setup.get("pretrained", True))}
    for key in ("in_chans", "in_chans_init", "rgb_channels"):
        if setup.get(key) is not None:
            kwargs[key] = tuple(setup[key]) if key == "rgb_channels" else setup[key]
    args = ", ".join([repr(setup["model"])] + [f"{k}={v!r}" for k, v in kwargs.items()])
    channels = setup.get("channels")
    views = ", ".join(VIEW_CODE[v] for v in VIEW_SETS[setup.get("views", "none")])
    return f"""\
import json

import torch
from safetensors import safe_open

from modelkit import create_model
from modelkit.images.preprocess import preprocess
from modelkit.images.read import read_image

head_path = {head_path!r}  # the head file from the app (or TrainedHead.save)
image_path = {image_path!r}  # your image
with safe_open(head_path, "pt") as f:
    classes = json.loads(f.metadata()["classes"])
    weight, bias = f.get_tensor("weight").double(), f.get_tensor("bias").double()

model = create_model({args}).eval()  # the frozen base model
with open(image_path, "rb") as f:
    image = read_image(f.read(), image_path)
x = preprocess(image, model.data_config, channels={channels!r}, scaling={setup.get("scaling")!r})

with torch.inference_mode():
    views = torch.cat([{views}])  # the views the head was taught with
    pooled = model.forward_head(model.forward_features(views), pre_logits=True).double()
    probabilities = torch.softmax(pooled @ weight.T + bias, dim=-1).mean(0)

for p, c in sorted(zip(probabilities.tolist(), classes), reverse=True):
    print(f"{{c}}: {{p:.6f}}")
"""
