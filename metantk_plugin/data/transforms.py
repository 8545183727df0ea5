"""Image transforms in plain torch, on batches ``x: [B, C, H, W]``.

Each transform is called as ``t(x, generator)``; random ones draw from ``generator``
(a ``torch.Generator``) only, so the same generator state gives the same output.
Float images are in [0, 1] until :class:`Normalize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = [
    "ColorJitter",
    "Compose",
    "Invert",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Resize",
    "convert_channels",
    "prepare_images",
    "resize",
]

_LUMA = (0.299, 0.587, 0.114)


def resize(x: torch.Tensor, size: int, *, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of float ``[B, C, H, W]`` to ``[B, C, size, size]``; with
    ``antialias`` the filter widens when shrinking (no aliasing), as PIL does."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """1 -> 3 channels by repetition; 3 -> 1 by ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B)."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels (only 1 <-> 3)")


def prepare_images(
    images: torch.Tensor, *, image_size: int | None = None, channels: int | None = None, chunk: int = 512
) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` -> uint8 ``[N, channels, image_size, image_size]``, resized with
    antialiasing and rounded (what PIL's resize of 8-bit images gives). Without a size or
    channel change this is a zero-copy ``[N, C, H, W]`` view of the input."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {tuple(images.shape)}")
    chw = images.permute(0, 3, 1, 2)
    size = image_size or images.shape[1]
    out_channels = channels or images.shape[3]
    if chw.shape[1:] == (out_channels, size, size):
        return chw
    out = torch.empty((images.shape[0], out_channels, size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        block = chw[start:start + chunk].float()
        block = convert_channels(resize(block, size), out_channels)
        out[start:start + chunk] = block.round().clamp_(0, 255).to(torch.uint8)
    return out


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    draw = torch.rand(n, generator=generator, device=generator.device if generator is not None else "cpu")
    return (low + (high - low) * draw).to(device=like.device, dtype=like.dtype)


@dataclass(frozen=True)
class Resize:
    """Bilinear antialiased resize to ``size x size``."""

    size: int

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return resize(x, self.size)


@dataclass(frozen=True)
class Invert:
    """``1 - x``: e.g. Omniglot strokes become 1 on a 0 background."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return 1.0 - x


@dataclass(frozen=True)
class Normalize:
    """``(x - mean[c]) / std[c]`` per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"Normalize needs equal-length mean/std with std > 0, got {self.mean}, {self.std}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.shape[1] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channels but the images have {x.shape[1]}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class RandomCrop:
    """Zero-pad by ``padding`` on every side, then crop a ``size x size`` window at a
    uniformly drawn offset per image."""

    size: int
    padding: int = 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        padded = F.pad(x, [self.padding] * 4) if self.padding else x
        n, _, height, width = padded.shape
        if self.size > min(height, width):
            raise ValueError(f"crop size {self.size} exceeds the padded image size {height}x{width}")
        device = generator.device if generator is not None else "cpu"
        top = torch.randint(0, height - self.size + 1, (n,), generator=generator, device=device).to(x.device)
        left = torch.randint(0, width - self.size + 1, (n,), generator=generator, device=device).to(x.device)
        offsets = torch.arange(self.size, device=x.device)
        rows = (top[:, None] + offsets)[:, None, :, None]  # [B, 1, s, 1]
        cols = (left[:, None] + offsets)[:, None, None, :]  # [B, 1, 1, s]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]


@dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    p: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        device = generator.device if generator is not None else "cpu"
        flip = (torch.rand(x.shape[0], generator=generator, device=device) < self.p).to(x.device)
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@dataclass(frozen=True)
class ColorJitter:
    """Per-image random brightness, contrast and saturation, in that order (for ``[0, 1]``
    RGB or grey images). Factors ``f ~ U[1 - s, 1 + s]`` (clipped at 0):
    brightness ``f x``; contrast ``f x + (1 - f) mean(grey(x))``; saturation
    ``f x + (1 - f) grey(x)`` (no effect on grey images); the result is clamped to [0, 1]
    after each step."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"ColorJitter.{name} must lie in [0, 1], got {getattr(self, name)}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]

        def factor(strength: float) -> torch.Tensor:
            return _uniform(n, max(0.0, 1 - strength), 1 + strength, generator, x).view(-1, 1, 1, 1)

        if self.brightness:
            x = (x * factor(self.brightness)).clamp(0, 1)
        if self.contrast:
            mean = convert_channels(x, 1).mean(dim=(1, 2, 3), keepdim=True)
            f = factor(self.contrast)
            x = (f * x + (1 - f) * mean).clamp(0, 1)
        if self.saturation and x.shape[1] == 3:
            f = factor(self.saturation)
            x = (f * x + (1 - f) * convert_channels(x, 1)).clamp(0, 1)
        return x


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
