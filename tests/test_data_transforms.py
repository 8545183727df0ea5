from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from metantk_plugin.data.transforms import (
    ColorJitter,
    Compose,
    Invert,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    convert_channels,
    prepare_images,
    resize,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.rand(16, 3, 10, 10)
    out = RandomCrop(10, padding=3)(x, _generator())
    padded = F.pad(x, [3] * 4)
    offsets = set()
    for image, crop in zip(padded, out):
        windows = [(i, j) for i in range(7) for j in range(7) if torch.equal(image[:, i:i + 10, j:j + 10], crop)]
        assert len(windows) == 1
        offsets.add(windows[0])
    assert len(offsets) > 4  # offsets differ between images
    assert torch.equal(out, RandomCrop(10, padding=3)(x, _generator()))
    with pytest.raises(ValueError, match="exceeds"):
        RandomCrop(20)(x, _generator())


def test_flip_mirrors_about_half_of_the_images():
    x = torch.rand(400, 1, 4, 4)
    out = RandomHorizontalFlip()(x, _generator(1))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all()) and 150 < int(flipped.sum()) < 250


def test_color_jitter_stays_in_range_and_is_seeded():
    x = torch.rand(64, 3, 8, 8)
    jitter = ColorJitter(0.4, 0.4, 0.4)
    out = jitter(x, _generator(2))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)
    assert torch.equal(out, jitter(x, _generator(2)))
    brightness = ColorJitter(brightness=0.4)(x, _generator(3)) / x.clamp_min(1e-6)
    factors = brightness.flatten(1)[:, 0]
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4
    grey = torch.rand(4, 1, 8, 8)
    assert torch.equal(ColorJitter(saturation=0.5)(grey, _generator()), grey)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=2.0)


def test_resize_antialiases_when_shrinking():
    checkerboard = ((torch.arange(63)[:, None] + torch.arange(63)[None, :]) % 2).float().view(1, 1, 63, 63)
    smooth = resize(checkerboard, 9)
    assert smooth.shape == (1, 1, 9, 9) and torch.allclose(smooth, torch.full_like(smooth, 0.5), atol=0.05)
    aliased = resize(checkerboard, 9, antialias=False)
    assert (aliased - 0.5).abs().max() > 0.4


def test_prepare_images_resizes_once_to_uint8_and_converts_channels():
    images = torch.randint(0, 256, (5, 20, 20, 1), dtype=torch.uint8)
    same = prepare_images(images)
    assert same.shape == (5, 1, 20, 20) and same.data_ptr() == images.data_ptr()
    out = prepare_images(images, image_size=10, channels=3, chunk=2)
    assert out.dtype == torch.uint8 and out.shape == (5, 3, 10, 10)
    expected = resize(images.permute(0, 3, 1, 2).float(), 10).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(out[:, 0:1], expected) and torch.equal(out[:, 0], out[:, 2])
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.allclose(convert_channels(rgb, 1)[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])
    with pytest.raises(ValueError, match="cannot convert"):
        convert_channels(torch.rand(1, 2, 4, 4), 3)


def test_compose_invert_and_normalize():
    x = torch.rand(3, 2, 4, 4)
    out = Compose([Invert(), Normalize((0.5, 0.25), (0.5, 2.0))])(x, None)
    assert torch.allclose(out[:, 0], (1 - x[:, 0] - 0.5) / 0.5) and torch.allclose(out[:, 1], (0.75 - x[:, 1]) / 2)
    with pytest.raises(ValueError, match="channels"):
        Normalize((0.5,), (0.5,))(x)
