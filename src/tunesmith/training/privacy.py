"""DP-SGD for the Trainer-based families (`training.privacy`): Opacus' per-example clipping, Gaussian noise calibrated
to the target epsilon, Poisson sampling and a privacy accountant, inside the transformers Trainer.

    training: {privacy: {epsilon: 8, max_grad_norm: 1.0}}   # delta: 1 / (10 * train rows) unless set

`PrivateTrainer` swaps the Trainer's train loader for Opacus' Poisson-sampled one and its optimizer for a
`DPOptimizer`; the Trainer's own (whole-batch) clipping is off. `privacy_record(trainer)` reads the spent epsilon
from the accountant at the end. The guarantee covers the train split; the eval split picks the best checkpoint.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from tunesmith.config import DPConfig
from tunesmith.training.distributed import world_size
from tunesmith.training.trainer import TrainingError, TunesmithTrainer

# What Opacus says when a trainable weight got no per-example gradient (used outside a hooked module) or one
# shared across the batch (a broadcast lookup like BERT's position ids).
_NO_PER_EXAMPLE_GRADIENT = ("Per sample gradient is not initialized", "stack expects each tensor to be equal size")
MECHANISM = "DP-SGD (Opacus): Poisson sampling, per-example L2 clipping, Gaussian noise"


def target_delta(privacy: DPConfig, n_train: int) -> float:
    """training.privacy.delta, or 1 / (10 n): well below 1/n, so no single row can be released outright."""
    return privacy.delta if privacy.delta is not None else 1.0 / (10 * max(n_train, 1))


def check_supported() -> None:
    """Before any model is loaded: Opacus installed (the `privacy` extra), one process."""
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise TrainingError("training.privacy needs Opacus: pip install 'tunesmith[privacy]'") from None
    if world_size() > 1:  # Opacus' DPDDP needs its own wrapper and distributed Poisson sampler, not wired here
        raise TrainingError(f"training.privacy: DP-SGD trains in one process; this run has {world_size()} "
                            "(--nproc / torchrun). Launch it without them, or remove training.privacy")


def check_delta(privacy: DPConfig, n_train: int) -> None:
    """A delta of 1/n or more allows leaking one whole row with that probability: refused."""
    if privacy.delta is not None and privacy.delta >= 1.0 / max(n_train, 1):
        raise TrainingError(f"training.privacy.delta: {privacy.delta:g} is not below 1 / {n_train} train rows; set "
                            f"it under {1.0 / max(n_train, 1):.2g} (or leave it out for 1 / (10 n))")


def freeze_shared_positions(model) -> list[str]:
    """Freeze the position embeddings: encoders look them up with one `position_ids` row broadcast over the batch
    (BERT's, DistilBERT's buffers), so autograd sums their gradient over the examples before Opacus' hooks see it
    and no per-example gradient exists. Returns the frozen parameter names (they keep their pretrained values)."""
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding) and "position" in name.rsplit(".", 1)[-1]:
            for pname, param in module.named_parameters():
                if param.requires_grad:
                    param.requires_grad_(False)
                    frozen.append(f"{name}.{pname}")
    return frozen


class PrivateTrainer(TunesmithTrainer):
    """A `TunesmithTrainer` that trains with DP-SGD. Single process only (`check_supported` refuses the rest)."""

    def __init__(self, *args, privacy: DPConfig, **kwargs):
        train_args = kwargs["args"]
        train_args.max_grad_norm = 0.0  # Opacus clips each example's gradient; a whole-batch clip would change it
        train_args.torch_compile = False  # its hooks need the eager modules
        super().__init__(*args, **kwargs)
        n_train = len(self.train_dataset)
        check_delta(privacy, n_train)
        self.privacy = privacy
        self.delta = target_delta(privacy, n_train)
        self.engine = self.hooks = self.dp_optimizer = None
        self.noise_multiplier = self.sample_rate = None
        self.planned_steps = 0
        self.add_callback(_PrivacySteps(self))

    def get_train_dataloader(self) -> DataLoader:
        """Make model, optimizer and loader private together: Opacus needs all three, and the Trainer asks for the
        loader first (its `create_optimizer` keeps the optimizer made here)."""
        from opacus import PrivacyEngine
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.validators.errors import UnsupportedModuleError

        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        loader = DataLoader(dataset, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        self.sample_rate = 1 / len(loader)  # Poisson: each row joins a step's batch with this probability
        per_epoch = int(1 / self.sample_rate)  # the DP loader's length, as the Trainer will count it
        self.planned_steps = self.args.max_steps if self.args.max_steps > 0 else \
            math.ceil(self.args.num_train_epochs * per_epoch)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Secure RNG turned off")  # torchcsprng: see docs
            self.engine = PrivacyEngine(accountant=self.privacy.accountant)
        # make_private_with_epsilon takes whole epochs; max_steps and fractional epochs need the steps form.
        with warnings.catch_warnings():  # the search tries tiny sigmas whose RDP optimum is the largest order
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            self.noise_multiplier = get_noise_multiplier(
                target_epsilon=self.privacy.epsilon, target_delta=self.delta, sample_rate=self.sample_rate,
                steps=self.planned_steps, accountant=self.privacy.accountant)
        self.create_optimizer()
        self.model.train()  # Opacus validates a model in training mode (the Trainer switches it later)
        try:
            self.hooks, self.dp_optimizer, dp_loader = self.engine.make_private(
                module=self.model, optimizer=self.optimizer, data_loader=loader,
                noise_multiplier=self.noise_multiplier, max_grad_norm=self.privacy.max_grad_norm,
                poisson_sampling=True, wrap_model=False)  # hooks on the HF model itself: save_pretrained etc. stay
        except (UnsupportedModuleError, NotImplementedError) as exc:
            raise TrainingError(f"training.privacy: Opacus cannot compute per-example gradients for this model "
                                f"({str(exc)[:300]}); use another model.base or remove training.privacy") from None
        self.optimizer = self.dp_optimizer
        return dp_loader

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        except (ValueError, RuntimeError) as exc:  # a layer Opacus' hooks cannot see per example (module-free use)
            if not any(sign in str(exc) for sign in _NO_PER_EXAMPLE_GRADIENT):
                raise
            raise TrainingError(f"training.privacy: this model has weights without a per-example gradient ({exc}); "
                                "use another model.base, a method that freezes them (lora, freeze, head), or "
                                "remove training.privacy") from None

    def spent_epsilon(self) -> float:
        """The epsilon the accountant gives for the steps taken so far (0 before the first)."""
        if self.engine is None or not self.engine.accountant.history:
            return 0.0
        return float(self.engine.get_epsilon(self.delta))

    def record(self) -> dict[str, Any]:
        """What training reports, the lineage and the model card record about the guarantee."""
        steps = sum(s for _, _, s in self.engine.accountant.history) if self.engine else 0
        return {"epsilon": self.spent_epsilon(), "target_epsilon": self.privacy.epsilon, "delta": self.delta,
                "max_grad_norm": self.privacy.max_grad_norm, "noise_multiplier": self.noise_multiplier,
                "sample_rate": self.sample_rate, "steps": steps, "planned_steps": self.planned_steps,
                "accountant": self.privacy.accountant, "mechanism": MECHANISM, "opacus": _opacus_version()}

    def detach_privacy(self) -> None:
        """Remove Opacus' hooks and per-example buffers from the model (before it is merged and saved)."""
        if self.hooks is not None:
            self.hooks.cleanup()
            self.hooks = None


class _PrivacySteps(TrainerCallback):
    """Per-example gradients cleared after every step (the Trainer zeroes only `.grad`); the accountant seeded with
    the steps a resumed run already took, so the spent epsilon covers the whole run."""

    def __init__(self, trainer: PrivateTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        t = self.trainer
        if state.global_step and t.engine is not None:
            t.engine.accountant.history = [(t.noise_multiplier, t.sample_rate, state.global_step)]

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.trainer.dp_optimizer is not None:
            self.trainer.dp_optimizer.zero_grad(set_to_none=True)


def privacy_record(trainer) -> dict[str, Any] | None:
    """The spent budget of a private trainer (hooks removed), None for any other."""
    if not isinstance(trainer, PrivateTrainer):
        return None
    record = trainer.record()
    trainer.detach_privacy()
    return record


def privacy_metrics(record: dict | None) -> dict[str, float]:
    """Gate-able numbers: `privacy.epsilon <= 8`, `privacy.delta <= 1e-5`."""
    if not record:
        return {}
    return {"privacy.epsilon": float(record["epsilon"]), "privacy.delta": float(record["delta"])}


def lineage_tags(record: dict | None) -> dict[str, str]:
    """Registry tags and tunesmith.json fields: the guarantee the version was trained under."""
    if not record:
        return {}
    return {"privacy.epsilon": f"{record['epsilon']:.4g}", "privacy.target_epsilon": f"{record['target_epsilon']:g}",
            "privacy.delta": f"{record['delta']:.3g}", "privacy.max_grad_norm": f"{record['max_grad_norm']:g}",
            "privacy.noise_multiplier": f"{record['noise_multiplier']:.4g}", "privacy.steps": str(record["steps"]),
            "privacy.accountant": record["accountant"]}


def privacy_html(record: dict) -> str:
    """The report's section: the guarantee in one sentence and the numbers behind it."""
    from html import escape

    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in lineage_tags(record).items())
    return (f"<p>Trained with {escape(record['mechanism'])}: ({record['epsilon']:.3g}, {record['delta']:.2g})-DP for "
            f"the train rows (target epsilon {record['target_epsilon']:g}; {escape(record['accountant'])} accountant, "
            f"Opacus {escape(record['opacus'])}).</p><table>{rows}</table>")


def _opacus_version() -> str:
    from importlib import metadata

    return metadata.version("opacus")
