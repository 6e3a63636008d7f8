"""Training an image classifier through the transformers Trainer: rows carry the image path and class id, the
collator decodes and (seeded) augments each batch, LoRA goes on the backbone's linear and conv layers.

    train(cfg, bundle, run_dir, resolved, start_from=None, callbacks=())
"""

from __future__ import annotations

from functools import partial

import torch
from datasets import Dataset

from tunesmith.config import Config, MethodKind
from tunesmith.contracts import TrainerParts
from tunesmith.data.images import IMAGE
from tunesmith.families.image_classification.model import build_model, load_processor, lora_targets
from tunesmith.families.image_classification.transforms import Preprocess, load_rgb
from tunesmith.training.run import TrainerHooks, train_with_trainer
from tunesmith.training.trainer import TrainingError, TunesmithTrainer, compute_metrics


class ImageTrainer(TunesmithTrainer):
    """Keeps the `image` column for the collator (the stock Trainer drops columns the model's forward does not name)."""

    def _remove_unused_columns(self, dataset, description=None):
        return dataset

    # transformers 5 saves checkpoints under the legacy key names (ViT: encoder.layer.N.attention.attention.query)
    # and its Trainer reloads them without renaming them back (missing/unexpected keys, only logged), so the best
    # checkpoint would come back half-loaded. from_pretrained renames them; a LoRA model keeps peft's own loading.
    def _load_best_model(self) -> None:
        if not self._load_renamed(self.state.best_model_checkpoint, self.model):
            super()._load_best_model()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if not self._load_renamed(resume_from_checkpoint, model or self.model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    @staticmethod
    def _load_renamed(checkpoint, model) -> bool:
        if checkpoint is None or hasattr(model, "peft_config"):
            return False
        fresh = type(model).from_pretrained(checkpoint, use_safetensors=True)
        model.load_state_dict(fresh.state_dict(), strict=True)
        return True


CACHE_BYTES = 1 << 30  # decoded images kept in memory across epochs, at most (the rest is decoded again)


class ImageCollator:
    """Decodes a batch's images (kept decoded after the first epoch, up to CACHE_BYTES), augments train batches with
    its own seeded generator, and returns pixel_values + labels."""

    def __init__(self, prep: Preprocess, augment, seed: int):
        self.prep, self.augment = prep, augment
        self.generator = torch.Generator().manual_seed(seed) if augment is not None else None
        self.cache: dict[str, torch.Tensor] = {}
        self.cached_bytes = 0

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        images = [self._image(r[IMAGE]) for r in rows]
        pixels = self.prep.batch(images, augment=self.augment, generator=self.generator)
        return {"pixel_values": pixels, "labels": torch.tensor([r["labels"] for r in rows], dtype=torch.long)}

    def _image(self, path: str) -> torch.Tensor:
        if path in self.cache:
            return self.cache[path]
        image = _bounded(load_rgb(path), 2 * self.prep.size)
        if self.cached_bytes + image.numel() <= CACHE_BYTES:
            self.cache[path] = image
            self.cached_bytes += image.numel()
        return image


def _bounded(image: torch.Tensor, side: int) -> torch.Tensor:
    """A large image shrunk so its short side is `side` (crops then still see detail; memory stays small)."""
    h, w = image.shape[-2:]
    if min(h, w) <= side:
        return image
    scale = side / min(h, w)
    resized = torch.nn.functional.interpolate(image[None].float(), size=(round(h * scale), round(w * scale)),
                                              mode="bilinear", antialias=True, align_corners=False)[0]
    return resized.round().clamp(0, 255).to(torch.uint8)


def image_dataset(frame, labels: list[str], where: str) -> Dataset:
    ids = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(frame["label"]) - set(ids))
    if unknown:
        raise TrainingError(f"{where} split has labels {unknown[:5]} that are not in bundle.labels {labels[:10]}")
    return Dataset.from_dict({IMAGE: frame[IMAGE].tolist(), "labels": [ids[v] for v in frame["label"]],
                              "length": [1] * len(frame)})


def freeze_norm_statistics(model: torch.nn.Module) -> int:
    """Batch norms whose weights do not train keep their running statistics too (they stay in eval mode while the
    rest trains): a frozen backbone (head, freeze, LoRA) is then the same function in training as at the end."""
    frozen = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            module.eval()
            module.train = lambda mode=True, m=module: m  # Trainer's model.train() leaves it in eval mode
            frozen += 1
    return frozen


def trainer_parts(cfg: Config, bundle, processor, model, _teacher_dir) -> TrainerParts:
    freeze_norm_statistics(model)
    prep = Preprocess.of(processor, cfg.image.size)
    train_ds = image_dataset(bundle.train, list(bundle.labels), "train")
    eval_ds = image_dataset(bundle.eval, list(bundle.labels), "eval") if len(bundle.eval) else None
    return TrainerParts(train_ds, eval_ds, data_collator=_Split(ImageCollator(prep, cfg.image.augment, cfg.seed),
                                                                ImageCollator(prep, None, cfg.seed)),
                        compute_metrics=compute_metrics, trainer_cls=ImageTrainer)


class _Split:
    """One collator for the Trainer: augmenting while the model trains, plain while it is evaluated."""

    def __init__(self, train: ImageCollator, plain: ImageCollator):
        self.train, self.plain, self.model = train, plain, None

    def __call__(self, rows):
        training = self.model.training if self.model is not None else True
        return (self.train if training else self.plain)(rows)


def _build(cfg: Config, resolved, labels, kind):
    model = build_model(resolved.path, labels, revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code)
    if kind in (MethodKind.LORA, MethodKind.QLORA) and not cfg.method.lora.target_modules:
        targets = lora_targets(model)
        if not targets:
            raise TrainingError(f"method.lora.target_modules: {type(model).__name__} has no Linear or 1x1 Conv2d layer "
                                "in its backbone; list the module names to adapt there")
        cfg.method.lora.target_modules = targets
    return model


def _processor(cfg: Config, resolved):
    """The base's image processor; with image.size set, saved with that size so serving resizes as training did."""
    processor = load_processor(resolved.path, revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code)
    if cfg.image.size:
        processor.size = {"height": cfg.image.size, "width": cfg.image.size}
    return processor


def _parts(cfg, bundle, processor, model, teacher_dir):
    parts = trainer_parts(cfg, bundle, processor, model, teacher_dir)
    parts.data_collator.model = model  # the collator asks the model whether it is training
    return parts


train = partial(train_with_trainer, TrainerHooks(_processor, _build, _parts))
