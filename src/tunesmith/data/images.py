"""Image rows: an image-folder layout or a table with an image path column, each image opened once and checked.

    table = read_image_table("data.path", Path("photos/"), "csv", max_line_bytes)   # class per subfolder, or a file
    checked = check_image_rows(table, cfg.data, ImageSettings("image", max_pixels=40_000_000, max_bytes=20 * 2**20))

Every row becomes usable, bad (missing, unreadable, truncated or oversized image, missing or unknown label: with
its file:line or path and the reason) or excluded by data.drop_labels. A usable row's `text` is the content hash of
its decoded pixels (its split key the smallest of its near-duplicate cluster's, so a carved split keeps them together), so the generic data gates find exact duplicates and cross-split leakage of images as they do of
texts, and a champion is never scored on images it trained on; `image` is the file's absolute path, `image_phash`
the perceptual hash `image_checks` compares for near-duplicates, `image_mode` the mode it had before conversion to
RGB and `image_exif` the personal metadata (GPS, camera serials) found in it. Boxes (detection) will ride along.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.errors import DataError
from tunesmith.data.load import Table, load_table, require_readable
from tunesmith.data.schema import (
    LABEL,
    ORDER,
    SOURCE,
    SPLIT_TEXT,
    TEXT,
    BadRowReason,
    CheckedTable,
    RowProblem,
    label_strings,
    sort_rows,
)

IMAGE, PHASH, MODE, EXIF = "image", "image_phash", "image_mode", "image_exif"
IMAGE_COLUMNS = (IMAGE, PHASH, MODE, EXIF)
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769
_SERIAL_TAGS = {0xA431: "body serial number", 0xA435: "lens serial number", 0xC62F: "camera serial number"}


@dataclass(frozen=True)
class ImageSettings:
    """How image rows are read: the path column of a table, and the limits past which a file is refused."""

    column: str = IMAGE
    max_pixels: int = 40_000_000  # width x height; above it the image is never decoded (decompression bomb)
    max_bytes: int = 50 * 2**20
    near_distance: int | None = 4  # near-duplicates (pHash bits) split together; None: each image on its own


@dataclass(frozen=True)
class ImageInfo:
    digest: str  # sha256 of the decoded RGB pixels and the size: identical images, whatever the file format
    phash: str  # 64-bit perceptual hash (DCT), hex
    mode: str  # the mode the file had (converted to RGB for training)
    width: int
    height: int
    exif: list[str]  # personal metadata found: "GPS position", "body serial number", ...


def read_image_table(key: str, path: Path, fmt: str = "auto", max_line_bytes: int = 16 * 2**20) -> Table:
    """A folder of class subfolders (each file one row, its folder the label), else a csv/jsonl/parquet table."""
    require_readable(key, path)
    if not path.is_dir() or (path / "dataset_info.json").is_file():
        return load_table(key, path, fmt, max_line_bytes=max_line_bytes)
    files = sorted(f for f in path.rglob("*") if f.is_file()
                   and not any(part.startswith(".") for part in f.relative_to(path).parts))
    if not any(len(f.relative_to(path).parts) > 1 for f in files):
        raise DataError(str(path), f"no images in class subfolders of {path} ({key})",
                        "lay the images out as <folder>/<label>/<image>, or give a csv/jsonl/parquet file with an "
                        "image path column")
    parts = [f.relative_to(path).parts for f in files]  # a file beside the class folders has no label: a bad row
    frame = pd.DataFrame({IMAGE: [str(f.relative_to(path)) for f in files],
                          LABEL: [p[0] if len(p) > 1 else None for p in parts]})
    frame[SOURCE] = [f"{path.name}/{f.relative_to(path)}" for f in files]
    frame[ORDER] = np.arange(len(files), dtype=np.int64)
    return Table(key=key, path=path, format="folder", frame=frame)


def inspect_image(path: Path, settings: ImageSettings) -> ImageInfo:
    """Open, check and hash one image; RowProblem says why it cannot be used."""
    import imagehash
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise RowProblem(BadRowReason.MISSING_IMAGE, f"image file not found: {path}")
    size = path.stat().st_size
    if size > settings.max_bytes:
        raise RowProblem(BadRowReason.IMAGE_TOO_LARGE, f"{path.name}: {size} bytes, over the limit of "
                         f"{settings.max_bytes} (image.max_bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # our own limit decides below
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise RowProblem(BadRowReason.IMAGE_TOO_LARGE, f"{path.name}: refused as a decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise RowProblem(BadRowReason.UNREADABLE_IMAGE, f"{path.name}: not an image Pillow can read ({err})") from None
    with im:
        width, height = im.size
        if width * height > settings.max_pixels:
            raise RowProblem(BadRowReason.IMAGE_TOO_LARGE, f"{path.name}: {width}x{height} = {width * height} pixels, "
                             f"over image.max_pixels ({settings.max_pixels}); refused before decoding (a "
                             "decompression bomb, or an image to downscale first)")
        try:
            im.load()
        except (OSError, ValueError, SyntaxError) as err:
            reason = BadRowReason.TRUNCATED_IMAGE if "truncat" in str(err).lower() else BadRowReason.UNREADABLE_IMAGE
            raise RowProblem(reason, f"{path.name}: cannot decode its pixels ({err})") from None
        exif = exif_findings(im)
        mode = im.mode
        rgb = im.convert("RGB")
    digest = hashlib.sha256(f"{width}x{height}:".encode() + rgb.tobytes()).hexdigest()
    return ImageInfo(digest, str(imagehash.phash(rgb)), mode, width, height, exif)


def exif_findings(im) -> list[str]:
    """Personal metadata in an image's EXIF: a GPS position, camera or lens serial numbers."""
    try:
        exif = im.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block is no finding; the pixels decoded
        return []
    found = []
    gps = exif.get_ifd(_GPS_IFD) if _GPS_IFD in exif else {}
    if gps:
        found.append("GPS position")
    tags = {**dict(exif), **(exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {})}
    found += [name for tag, name in _SERIAL_TAGS.items() if str(tags.get(tag) or "").strip()]
    return found


def check_image_rows(table: Table, data, settings: ImageSettings) -> CheckedTable:
    """Each row's image (relative to its table's folder) opened and checked, its label checked like a text row's."""
    folder = table.path if table.format == "folder" else table.path.parent
    frame = table.frame
    if not frame.empty and table.format != "folder":
        _require_column(table, settings.column, "image.column")
        _require_column(table, data.label_column, "data.label_column")
    label_column = LABEL if table.format == "folder" else data.label_column
    excluded: Counter = Counter()
    modes: Counter = Counter()
    if frame.empty:
        by_source = {}
    else:  # labels as the text rows read them (1 / 1.0 -> "1"), computed for the whole column at once
        texts, invalid_mask = label_strings(frame[label_column])
        by_source = dict(zip(frame[SOURCE], zip(texts, invalid_mask, strict=True), strict=True))

    def to_row(raw: dict[str, Any], source: str) -> dict[str, Any] | None:
        label, invalid = by_source[source]
        label = None if not isinstance(label, str) and pd.isna(label) else label  # a missing cell (None or NaN)
        if label in data.drop_labels:
            excluded[label] += 1
            return None
        value = raw.get(settings.column if table.format != "folder" else IMAGE)
        if not isinstance(value, str) or not value.strip():
            raise RowProblem(BadRowReason.MISSING_IMAGE, f"no image path in column {settings.column!r}")
        if invalid or label is None:
            where = "no class subfolder" if table.format == "folder" else f"column {label_column!r}"
            raise RowProblem(BadRowReason.MISSING_LABEL if label is None else BadRowReason.INVALID_LABEL,
                             f"no usable label ({where})")
        if data.labels and label not in data.labels:
            raise RowProblem(BadRowReason.UNKNOWN_LABEL, f"label {label!r} is not in data.labels")
        path = (folder / value).resolve()
        info = inspect_image(path, settings)
        modes[info.mode] += 1
        return {TEXT: f"image:{info.digest}", LABEL: label, IMAGE: str(path), PHASH: info.phash, MODE: info.mode,
                EXIF: ", ".join(info.exif)}

    checked = sort_rows(table, to_row, [TEXT, LABEL, *IMAGE_COLUMNS], data.slice_columns)
    checked.excluded = excluded
    if settings.near_distance is not None and len(checked.rows):
        # the split keys on the cluster, so near-duplicates land in one split (the family judges rows by their own
        # pixels again after the split: checks_on_full_text)
        clusters = near_clusters(checked.rows[PHASH].tolist(), settings.near_distance)
        checked.rows[SPLIT_TEXT] = checked.rows.groupby(clusters)[TEXT].transform("min")
    converted = {m: n for m, n in modes.items() if m != "RGB"}
    if converted:
        checked.warnings.append(f"{table.key} ({table.path}): {sum(converted.values())} images were not RGB "
                                f"(modes {dict(sorted(converted.items()))}); converted to RGB for training")
    return checked


def _require_column(table: Table, column: str, key: str) -> None:
    columns = [str(c) for c in table.frame.columns if c not in (SOURCE, ORDER)]
    if column not in columns:
        raise DataError(str(table.path), f"no column {column!r} ({key}); the columns are {columns}",
                        f"set {key} to the column that holds the {'image paths' if key == 'image.column' else 'labels'}")


BLOCK = 1024  # rows compared at once: memory is BLOCK x n distances, whatever n is


def close_pairs(a: np.ndarray, b: np.ndarray, distance: int, *, same: bool = False):
    """(i, j, bits) for every hash a[i] within `distance` bits of b[j] (with `same`, a is b and only i > j), block by
    block so memory stays BLOCK x len(b)."""
    for start in range(0, len(a), BLOCK):
        block = a[start:start + BLOCK]
        d = np.bitwise_count(block[:, None] ^ b[None, :])
        if same:
            d[np.arange(len(block))[:, None] + start <= np.arange(len(b))[None, :]] = 255
        for i, j in zip(*np.nonzero(d <= distance), strict=True):
            yield start + int(i), int(j), int(d[i, j])


def near_clusters(phashes: list[str], distance: int) -> np.ndarray:
    """A cluster id per image, near-duplicates (within `distance` bits, chained) sharing one: what a split keeps
    together so it never carves a near-duplicate pair into two splits."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    h = np.array([int(x, 16) for x in phashes], dtype=np.uint64)
    pairs = np.array([(i, j) for i, j, _ in close_pairs(h, h, distance, same=True)], dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(h), len(h)))
    return connected_components(graph, directed=False)[1]
