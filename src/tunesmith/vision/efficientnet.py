"""EfficientNet-Lite (Tan & Le 2019; the "lite" variant for mobile: ReLU6, no squeeze-excitation, a fixed stem and
head) as a transformers `PreTrainedModel`, written here because torchvision/timm are not dependencies.

    config = EfficientNetLiteConfig(num_labels=10)               # Lite0: width 1.0, depth 1.0, 224 px
    model = EfficientNetLiteForImageClassification(config)       # model(pixel_values=x, labels=y).loss / .logits

Convolutions pad as TensorFlow's "SAME" does (the ImageNet weights were trained so). The module names follow the
transformers convention the training methods read: `efficientnet.embeddings` (the stem), `efficientnet.blocks`
(one entry per MBConv block, `config.num_hidden_layers` of them) and `classifier` (the head).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

MODEL_TYPE = "tunesmith-efficientnet-lite"
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of EfficientNet-B0 / Lite0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class EfficientNetLiteConfig(PretrainedConfig):
    """Width and depth multipliers scale the blocks (Lite1: 1.0 / 1.1 at 240 px); stem and head stay fixed in the
    lite variants. `width` below 1 and `head_channels` make the tiny test models."""

    model_type = MODEL_TYPE

    def __init__(self, width: float = 1.0, depth: float = 1.0, image_size: int = 224, dropout: float = 0.2,
                 stem_channels: int = 32, head_channels: int = 1280, batch_norm_eps: float = 1e-3,
                 batch_norm_momentum: float = 0.01, image_mean=(0.498, 0.498, 0.498),
                 image_std=(0.502, 0.502, 0.502), **kwargs):
        self.width, self.depth, self.image_size, self.dropout = width, depth, image_size, dropout
        self.stem_channels, self.head_channels = stem_channels, head_channels
        self.batch_norm_eps, self.batch_norm_momentum = batch_norm_eps, batch_norm_momentum
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.num_hidden_layers = sum(_repeats(r, depth, i) for i, (r, *_) in enumerate(STAGES))
        super().__init__(**kwargs)


def _channels(c: int, width: float) -> int:
    """TF's round_filters: scale, round to a multiple of 8, never more than 10% below the scaled value."""
    if width == 1.0:
        return c
    scaled = c * width
    out = max(8, int(scaled + 4) // 8 * 8)
    return out + 8 if out < 0.9 * scaled else out


def _repeats(r: int, depth: float, stage: int) -> int:
    """Lite keeps the first and last stages at one block (fix_head_stem); the others scale with depth."""
    return r if stage in (0, len(STAGES) - 1) else int(math.ceil(depth * r))


class SameConv(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output size ceil(input / stride), extra pad at the bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int, config: EfficientNetLiteConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)


class Stem(nn.Module):
    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__()
        self.conv = SameConv(3, config.stem_channels, 3, stride=2, bias=False)
        self.bn = _bn(config.stem_channels, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; a skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, config: EfficientNetLiteConfig):
        super().__init__()
        mid = c_in * expand
        self.expand_conv = nn.Conv2d(c_in, mid, 1, bias=False) if expand != 1 else None
        self.bn0 = _bn(mid, config) if expand != 1 else None
        self.depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self.bn1 = _bn(mid, config)
        self.project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn2 = _bn(c_out, config)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.bn0(self.expand_conv(x))) if self.expand_conv is not None else x
        h = self.bn2(self.project_conv(F.relu6(self.bn1(self.depthwise_conv(h)))))
        return h + x if self.skip else h


class EfficientNetLitePreTrainedModel(PreTrainedModel):
    config_class = EfficientNetLiteConfig
    base_model_prefix = "efficientnet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class EfficientNetLiteModel(EfficientNetLitePreTrainedModel):
    """The backbone: stem, MBConv blocks, 1x1 head conv; `forward` returns pooled features (batch, head_channels)."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.embeddings = Stem(config)
        blocks, c_in = [], config.stem_channels
        for stage, (repeats, kernel, stride, expand, _, c_out) in enumerate(STAGES):
            c_out = _channels(c_out, config.width)
            for i in range(_repeats(repeats, config.depth, stage)):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand, config))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.conv_head = nn.Conv2d(c_in, config.head_channels, 1, bias=False)
        self.bn_head = _bn(config.head_channels, config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(pixel_values)
        for block in self.blocks:
            x = block(x)
        return F.relu6(self.bn_head(self.conv_head(x))).mean(dim=(2, 3))


class EfficientNetLiteForImageClassification(EfficientNetLitePreTrainedModel):
    """The backbone with a dropout + linear head; cross-entropy when `labels` are given."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.efficientnet = EfficientNetLiteModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_channels, config.num_labels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_kwargs) -> ImageClassifierOutput:
        features = self.efficientnet(pixel_values)
        logits = self.classifier(self.dropout(features))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=(features,))


AutoConfig.register(MODEL_TYPE, EfficientNetLiteConfig, exist_ok=True)
AutoModelForImageClassification.register(EfficientNetLiteConfig, EfficientNetLiteForImageClassification, exist_ok=True)
