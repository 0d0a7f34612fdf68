"""What a checkpoint is (PretrainedCfg) and what a built model now eats (DataConfig)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from modelkit.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# timm's eval crop modes (see modelkit.images.resize.plan_crop)
CROP_MODES = ("center", "squash", "border")


def check_crop_mode(mode: str) -> str:
    """``mode`` if it is one of CROP_MODES, else a ConfigError saying what each one does."""
    if mode not in CROP_MODES:
        raise ConfigError(
            f"crop_mode {mode!r} is not known; use 'center' (shorter side resized, centre "
            "cropped), 'squash' (both sides resized, aspect not kept) or 'border' (longer side "
            "resized, padded with the mean)."
        )
    return mode


def adapt_stats(values: tuple[float, ...], in_chans: int) -> tuple[float, ...]:
    """Per-channel mean or std for ``in_chans`` channels, derived from the checkpoint's values.

    One channel takes the average (a gray image is roughly the mean of R, G, B); other counts tile
    the source values and cut, matching how the first-conv filters are tiled.
    """
    values = tuple(float(v) for v in values)
    if in_chans == len(values):
        return values
    if in_chans == 1:
        return (sum(values) / len(values),)
    return tuple(values[i % len(values)] for i in range(in_chans))


@dataclass(frozen=True)
class DataConfig:
    """What a model eats: ``input_size`` is (in_chans, H, W); mean/std have in_chans items."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"  # "bilinear" | "bicubic" | "nearest"
    crop_pct: float = 0.875  # resize to size / crop_pct (how: crop_mode), then crop size
    crop_mode: str = "center"  # one of CROP_MODES, timm's eval modes
    resize_size: int | None = None  # explicit resize (torchvision's); wins over crop_pct
    # "none": mean/std apply to the raw pixel values (sensor weights published that way), so
    # preprocess's "auto" scaling leaves values as they are; "" = the usual auto scaling
    value_scaling: str = ""

    def __post_init__(self) -> None:
        check_crop_mode(self.crop_mode)

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    def with_in_chans(self, in_chans: int) -> DataConfig:
        return dataclasses.replace(
            self,
            input_size=(in_chans, *self.input_size[1:]),
            mean=adapt_stats(self.mean, in_chans),
            std=adapt_stats(self.std, in_chans),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def data_config_for(config: DataConfig, in_chans: int, rgb: tuple[int, ...] | None) -> DataConfig:
    """The data config for ``in_chans``; with rgb_channels the RGB stats sit on those channels."""
    if not rgb:
        return config.with_in_chans(in_chans)
    mean = list(adapt_stats(config.mean, in_chans))
    std = list(adapt_stats(config.std, in_chans))
    for i, c in enumerate(rgb):
        mean[c], std[c] = config.mean[i], config.std[i]
    return dataclasses.replace(
        config, input_size=(in_chans, *config.input_size[1:]), mean=tuple(mean), std=tuple(std)
    )


@dataclass(frozen=True)
class PretrainedCfg:
    """One checkpoint of one architecture: where its weights live and what they were trained on."""

    architecture: str
    tag: str = ""
    url: str | None = None
    hf_hub_id: str | None = None  # a Hugging Face Hub repo (timm's weights live there)
    hf_hub_filename: str | None = None  # the file in that repo; None: timm's usual names
    file: str | None = None  # a path on disk (e.g. inside an installed package); tried before url
    hub_filename: str | None = None  # name in the torch hub cache (torch.hub.get_dir()/checkpoints)
    num_classes: int = 1000
    in_chans: int = 3
    input_size: tuple[int, int, int] = (3, 224, 224)
    resize_size: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    crop_mode: str = "center"
    value_scaling: str = ""  # see DataConfig.value_scaling
    bands: tuple[str, ...] = ()  # the input bands in order, for weights trained on a sensor
    first_conv: str = ""  # module path of the first conv / patch embedding
    classifier: str = ""  # module path of the final linear layer(s)
    label_offset: int = 0  # 1 for 1001-class checkpoints whose row 0 is "background"
    categories: tuple[str, ...] | None = None
    license: str = ""
    metrics: dict = field(default_factory=dict)  # e.g. {"acc@1": 76.1, "acc@5": 92.9}
    gflops: float | None = None
    file_size_mb: float | None = None
    source: str = ""  # "torchvision" | "package" | "local" | "timm" | "torchgeo"
    is_default: bool = False

    def __post_init__(self) -> None:
        check_crop_mode(self.crop_mode)

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture

    @property
    def has_weights(self) -> bool:
        return bool(self.url or self.file or self.hf_hub_id)

    def data_config(self, in_chans: int | None = None) -> DataConfig:
        config = DataConfig(
            input_size=self.input_size,
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
            resize_size=self.resize_size,
            value_scaling=self.value_scaling,
        )
        return config.with_in_chans(in_chans) if in_chans else config
