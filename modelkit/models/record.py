"""``model.modelkit``: the one record of what modelkit knows about a model it built, and the class
swap that gives a model modelkit's methods.

Every model ``create_model`` returns carries the timm-style public attributes (``pretrained_cfg``,
``data_config``, ``adaptations``, ``categories``, ``num_classes``, ``num_features``,
``feature_info``) and this record, which holds the rest: which registry name it was built as,
which of its parts were drawn at random, where its classifier sits, its feature levels, and for
families run as steps (torchvision, EfficientNet-Lite) the steps themselves. Later stages
(explanations, runtime backends, scene maps) read the record; nothing writes it after
``create_model`` but ``reset_classifier`` (the pooling) and ``features_only`` (the levels kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from modelkit.models.features import FamilySpec


@dataclass
class ModelRecord:
    """What modelkit knows about one built model (``model.modelkit``)."""

    name: str  # the registry name it was built as, with its tag ("resnet50.imagenet1k_v2")
    tag: str  # the weights' tag ("" for random weights or a model without tags)
    source: str  # the registry source: "torchvision", "efficientnet_lite", "timm", ...
    classifier: str  # module path of the classifier's last layer ("" when there is none)
    levels: list[dict]  # every feature level: index, module, channels, reduction (and step)
    random_parts: list[str] = field(default_factory=list)  # drawn at random; [] = reproducible
    global_pool: str = "avg"  # "avg" (the family's own pooling) or "" (none, num_classes=0)
    fixed_size: tuple[int, int] | None = None  # the only (H, W) the model takes, if fixed
    native: type | None = None  # the model's own class, before modelkit's mixin
    # families run as a list of steps (see models.features): how to run and cut them
    spec: FamilySpec | None = None
    steps: list[str] = field(default_factory=list)
    layouts: list[str] = field(default_factory=list)
    conv_head: bool = False  # the classifier is a 1x1 convolution (SqueezeNet)
    # compiled runtimes made for this model (runtime.backends), by what they serve
    runners: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def runs_as_steps(self) -> bool:
        """True when the model can be run step by step (Grad-CAM's split forward needs it)."""
        return self.spec is not None and bool(self.steps)


_CLASSES: dict[tuple[type, type], type] = {}


def swap_class(model: nn.Module, mixin: type) -> None:
    """Give ``model`` the methods of ``mixin`` in place: its class becomes (mixin, native), made
    once per pair and named like the native class, so state-dict keys and reprs do not change."""
    record = model.__dict__.get("modelkit")
    native = record.native if record is not None and record.native else type(model)
    if (native, mixin) not in _CLASSES:
        _CLASSES[native, mixin] = type(native.__name__, (mixin, native),
                                       {"__module__": native.__module__})  # fmt: skip
    model.__class__ = _CLASSES[native, mixin]
    if record is not None:
        record.native = native
