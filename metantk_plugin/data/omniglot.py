"""Omniglot (Lake et al. 2015) from the official zip files or their extracted folders.

Layout read: ``images_<name>/<Alphabet>/<characterNN>/<image>.png`` inside a zip or a
folder. Several sources are merged by (alphabet, character, file name), so archives that
share alphabets (the two "small" background sets both hold Greek and Latin) give each
character once. Images are 105 x 105 with a white background (255) and black strokes (0).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.images import LabelledImages

__all__ = ["omniglot_sources", "read_omniglot"]

_EXPECTED = (
    "expected Omniglot class data: images_background*.zip / images_evaluation*.zip files, or "
    "extracted folders images_*/<Alphabet>/<characterNN>/<image>.png (all_runs.zip holds only "
    "the one-shot runs, not classes)"
)


def omniglot_sources(path: str | Path) -> list[Path]:
    """The zip files and folders under ``path`` that hold Omniglot classes, sorted.

    ``path`` may be one ``images_*.zip``, one extracted ``images_*`` folder, or a folder
    holding such zips/folders (directly or one level down, e.g. ``omniglot-py/``)."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"Omniglot path {root} does not exist; {_EXPECTED}")
    if root.is_file():
        if root.suffix != ".zip":
            raise DatasetError(f"Omniglot path {root} is a file but not a .zip; {_EXPECTED}")
        return [root]
    if _is_class_folder(root):
        return [root]
    found = []
    for folder in [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("images_")):
        found += [p for p in folder.iterdir() if p.name.startswith("images_") and (
            (p.is_file() and p.suffix == ".zip") or (p.is_dir() and _is_class_folder(p)))]
    if not found:
        raise DatasetError(f"no Omniglot classes under {root}; {_EXPECTED}")
    return sorted(found)


def read_omniglot(path: str | Path) -> LabelledImages:
    """All characters under ``path`` as one-channel uint8 images ``[N, 105, 105, 1]``.

    Classes are named ``"<Alphabet>/<characterNN>"`` and numbered in sorted name order;
    images of a class are in sorted file-name order. A (character, file) present in two
    sources must have identical bytes in both."""
    files: dict[tuple[str, str, str], tuple[bytes, str]] = {}
    for source in omniglot_sources(path):
        for key, data in _png_files(source):
            if key in files and files[key][0] != data:
                raise DatasetError(
                    f"Omniglot image {'/'.join(key)} differs between {files[key][1]} and {source}; "
                    "sources can only be merged when shared characters are identical"
                )
            files.setdefault(key, (data, str(source)))
    if not files:
        raise DatasetError(f"no PNG images found under {path}; {_EXPECTED}")
    class_names = sorted({f"{alphabet}/{character}" for alphabet, character, _ in files})
    class_id = {name: i for i, name in enumerate(class_names)}
    keys = sorted(files)
    images = [_decode_png(files[key][0], "/".join(key)) for key in keys]
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise DatasetError(f"Omniglot images under {path} have different sizes {sorted(shapes)}; expected one size")
    labels = np.array([class_id[f"{a}/{c}"] for a, c, _ in keys], dtype=np.int64)
    return LabelledImages(np.stack(images)[..., None], labels, class_names)


def _is_class_folder(folder: Path) -> bool:
    """True for a folder laid out as <Alphabet>/<character>/<image>.png."""
    return any(True for _ in folder.glob("*/*/*.png"))


def _png_files(source: Path) -> Iterator[tuple[tuple[str, str, str], bytes]]:
    """((alphabet, character, file name), PNG bytes) for every image of one source."""
    if source.is_dir():
        _refuse_one_shot_runs(source, (str(p.relative_to(source)) for p in source.glob("*/class_labels.txt")))
        for png in sorted(source.glob("*/*/*.png")):
            yield (png.parent.parent.name, png.parent.name, png.name), png.read_bytes()
        return
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{source} is not a readable zip file ({error}); {_EXPECTED}") from None
    with archive:
        _refuse_one_shot_runs(source, archive.namelist())
        for member in sorted(archive.namelist()):
            parts = member.split("/")
            if member.endswith(".png") and len(parts) >= 3:
                yield (parts[-3], parts[-2], parts[-1]), archive.read(member)


def _refuse_one_shot_runs(source: Path, names: Iterable[str]) -> None:
    """DatasetError when ``source`` is the official one-shot runs (``all_runs.zip``:
    ``runNN/class_labels.txt`` beside ``runNN/{training,test}/itemNN.png``), whose folders
    are runs, not characters: read as classes they would mix the characters of each run."""
    for name in names:
        if name.endswith("class_labels.txt"):
            raise DatasetError(
                f"{source} holds Omniglot's one-shot classification runs ({name}), not character classes; "
                f"{_EXPECTED}"
            )


def _decode_png(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"Omniglot image {name} is not a readable PNG ({error})") from None
