"""Serving an image classifier: POST /v1/classify-image takes base64-encoded images (JSON) and answers each with
its label, calibrated probability and every label's probability; the MLflow pyfunc takes an `image` column of the
same base64 strings.

Refusals say why: 413 for an image over the byte or pixel limit (a decompression bomb is refused before it is
decoded), 415 for bytes that are no image Pillow reads, 422 for bad base64, an empty list or a truncated image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import warnings
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from tunesmith.contracts import MlflowModel, Route
from tunesmith.serving.kit import ApiError
from tunesmith.serving.schemas import ClassifyResponse

MAX_IMAGES = 64  # per request
MAX_BYTES = 10 * 2**20  # per decoded image
MAX_PIXELS = 40_000_000  # per image, width x height, checked from the header before decoding
EXAMPLES = ["iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM8ISfHgA0wYRUdtBIA0MoBFD5jqJkAAAAASUVORK5CYII=",
            "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGOUkzvBgA0wYRUdtBIAz3YBFFtyrsEAAAAASUVORK5CYII="]


class ImageClassifyRequest(BaseModel):
    images: list[str] = Field(..., min_length=1, max_length=MAX_IMAGES, description="base64-encoded image files "
                              "(PNG, JPEG, ...); at most 64")
    model: str | None = Field(None, description="NAME (routed), NAME:VERSION or NAME@champion|challenger (pinned)")


def decode_image(value: str, i: int):
    """One base64 image as a PIL RGB image; ApiError 413/415/422 naming images[i] and why."""
    from PIL import Image, UnidentifiedImageError

    where = f"images[{i}]"
    if len(value) > MAX_BYTES * 4 // 3 + 4:
        raise ApiError(413, f"{where}: over {MAX_BYTES} bytes; send a smaller image", "invalid_request_error")
    try:
        raw = base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: not valid base64") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(413, f"{where}: refused as a decompression bomb (too many pixels)", "invalid_request_error") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(415, f"{where}: not an image format Pillow reads (PNG, JPEG, WebP, BMP, GIF, TIFF)",
                       "invalid_request_error") from None
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise ApiError(413, f"{where}: {width}x{height} pixels, over the limit of {MAX_PIXELS}", "invalid_request_error")
    try:
        im.load()
    except Exception as exc:  # noqa: BLE001 - whatever a broken file makes a decoder raise, the caller gets a 422
        raise ValueError(f"{where}: cannot decode its pixels ({type(exc).__name__}: {exc})") from None
    return im.convert("RGB"), {"sha256": hashlib.sha256(raw).hexdigest(), "width": width, "height": height}


def _items(body: ImageClassifyRequest, _texts):
    decoded = [decode_image(v, i) for i, v in enumerate(body.images)]
    return [d[0] for d in decoded], [d[1] for d in decoded]


CLASSIFY_IMAGE = Route(path="/v1/classify-image", request=ImageClassifyRequest, response=ClassifyResponse,
                       items=_items, respond=lambda answers, body, served: {"results": [a.result for a in answers]},
                       summary="Label each base64 image with its calibrated probability.")


def mlflow_items(_served, rows: list[dict], _params: dict) -> list:
    out = []
    for i, row in enumerate(rows):
        value = row.get("image")
        if not isinstance(value, str) or not value:
            raise ValueError(f"row {i}: column 'image' must be a base64-encoded image")
        try:
            out.append(decode_image(value, i)[0])
        except ApiError as exc:
            raise ValueError(f"row {i}: column 'image': {exc.message}") from None
    return out


MLFLOW = MlflowModel(inputs=({"type": "string", "name": "image", "required": True},),
                     outputs=({"type": "string", "name": "label", "required": True},
                              {"type": "double", "name": "score", "required": True},
                              {"type": "map", "values": {"type": "double"}, "name": "scores", "required": True}),
                     example={"image": EXAMPLES}, items=mlflow_items, flavor=None, pipeline_task="image-classification")


def recognizes(model_dir: Path, config: dict) -> bool:
    archs = config.get("architectures") or []
    return bool(archs) and archs[0].endswith("ForImageClassification")


def describe_model(model_dir: Path) -> dict:
    id2label = json.loads((Path(model_dir) / "config.json").read_text()).get("id2label") or {}
    return {"labels": [id2label[k] for k in sorted(id2label, key=int)]}


def load_served(model_dir: Path, served) -> None:
    from tunesmith.families.image_classification.model import load_classifier
    from tunesmith.families.image_classification.transforms import Preprocess
    from tunesmith.serving.models import temperature_of

    served.model, served.tokenizer = load_classifier(model_dir)
    served.weights_dir = Path(model_dir)
    served.labels = {int(k): v for k, v in served.model.config.id2label.items()}
    served.temperature = temperature_of(Path(model_dir))
    served.preprocess = Preprocess.of(served.tokenizer)
    served.onnx_refusal = "ONNX export is not built for image models yet"


def predict(served, images: list) -> list[dict]:
    from tunesmith.families.image_classification.transforms import load_rgb

    with torch.inference_mode(), served.autocast_ctx():
        logits = served.model(pixel_values=served.preprocess.batch([load_rgb(im) for im in images])).logits
        probs = torch.softmax(logits.float() / served.temperature, dim=-1).tolist()
    out = []
    for row in probs:
        best = max(range(len(row)), key=row.__getitem__)
        out.append({"label": served.labels.get(best, str(best)), "score": row[best],
                    "scores": {served.labels.get(i, str(i)): round(p, 6) for i, p in enumerate(row)}})
    return out
