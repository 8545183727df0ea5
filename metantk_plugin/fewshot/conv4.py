"""The Conv-4 few-shot baseline (Vinyals et al. 2016; Finn et al. 2017, Omniglot variant)."""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.task_spec import check_positive_int

__all__ = ["Conv4"]


class Conv4(nn.Module):
    """``blocks`` x [Conv3x3(hidden, stride 2, padding 1) -> BatchNorm -> ReLU], the mean over
    the final feature map, then a linear head.

    ``forward(x [N, in_channels, H, W]) -> (features [N, hidden], logits [N, num_classes])``.
    At 28 x 28, 1 channel, 5 classes it has 112,261 parameters. Initialisation (MAML's):
    convolutions Xavier-uniform with zero bias, BatchNorm scales U(0, 1) and zero shifts,
    head weights N(0, 1) (``head_init='normal'``) or 0 (``'zeros'``, which suits ANIL: a
    few head steps cannot outweigh N(0, 1) logits) and zero bias."""

    head_name = "classifier"
    """The linear head: ``logits = classifier(features)`` (what ANIL adapts)."""

    def __init__(self, num_classes: int = 5, in_channels: int = 1, hidden: int = 64, blocks: int = 4,
                 head_init: str = "normal"):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("hidden", hidden),
                            ("blocks", blocks)):
            check_positive_int(f"Conv4 {name}", value)
        if head_init not in ("normal", "zeros"):
            raise ValueError(f"Conv4 head_init must be 'normal' or 'zeros', got {head_init!r}")
        layers: list[nn.Module] = []
        for i in range(blocks):
            conv = nn.Conv2d(in_channels if i == 0 else hidden, hidden, 3, stride=2, padding=1)
            norm = nn.BatchNorm2d(hidden)
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
            nn.init.uniform_(norm.weight)
            layers += [conv, norm, nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(hidden, num_classes)
        if head_init == "normal":
            nn.init.normal_(self.classifier.weight)
        else:
            nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x).mean(dim=(2, 3))
        return features, self.classifier(features)
