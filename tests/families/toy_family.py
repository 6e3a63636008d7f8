"""A family that does not ship with tunesmith: "toy-keywords" spots texts that mention a keyword, with a hashed
bag-of-words model of its own. It is one module and one `register` call, and it passes the same contract suite as
the built-in families without any stage file knowing it exists: the proof that adding a family is one package.

    register(TOY)   # in a test fixture; unregister("toy-keywords") afterwards
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_file, save_file

from tunesmith.config import MethodKind, StrictModel
from tunesmith.contracts import Family, ReportBase
from tunesmith.data.checks import no_label_checks, redact_text_column
from tunesmith.data.report import label_distribution
from tunesmith.data.schema import LABEL, TEXT, check_columns, check_rows
from tunesmith.evaluation.html import bootstrap_note, comparison_table, esc
from tunesmith.evaluation.significance import bootstrap_delta, mean_stat
from tunesmith.families.common import read_table, text_mlflow
from tunesmith.io import atomic_dir
from tunesmith.model_card import write_model_card
from tunesmith.serving import schemas
from tunesmith.serving.routes import text_route

KIND = "toy-keywords"
WEIGHTS = "model.safetensors"


class ToyConfig(StrictModel):
    """`toy:` the toy family's own section."""

    buckets: int = Field(64, ge=8, le=4096, description="hashed word buckets of the bag-of-words")
    steps: int = Field(60, ge=1, description="full-batch Adam steps")


class BagOfWords(torch.nn.Module):
    def __init__(self, buckets: int):
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(buckets, 8, mode="mean")
        self.head = torch.nn.Linear(8, 1)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids, offsets))[:, 0]


def write_base(path: Path, buckets: int = 64, seed: int = 0) -> Path:
    """An untrained toy model dir: what `model.base` names for this family."""
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    save_file(BagOfWords(buckets).state_dict(), str(path / WEIGHTS))
    (path / "config.json").write_text(json.dumps({"architectures": ["ToyBagOfWords"], "buckets": buckets}))
    return path


def _load(path: Path) -> BagOfWords:
    buckets = json.loads((Path(path) / "config.json").read_text())["buckets"]
    model = BagOfWords(buckets)
    model.load_state_dict(load_file(str(Path(path) / WEIGHTS)))
    return model.eval()


def _batch(texts, buckets: int):
    ids = [[zlib.crc32(w.lower().encode()) % buckets for w in str(t).split()] or [0] for t in texts]
    offsets = torch.tensor([0, *np.cumsum([len(i) for i in ids])[:-1]], dtype=torch.long)
    return torch.tensor([x for i in ids for x in i], dtype=torch.long), offsets


# --- config and data -----------------------------------------------------------------------------------------


def configure(cfg) -> None:
    if "metric" not in cfg.training.model_fields_set:
        cfg.training.metric = "accuracy"


def check_label_rows(table, cfg):
    check_columns(table, cfg.data)
    return check_rows(table, cfg.data)


def label_set(splits, cfg, files):
    return sorted(splits["train"][LABEL].unique().tolist()), []


# --- training -------------------------------------------------------------------------------------------------


def train(cfg, bundle, run_dir: Path, resolved, *, start_from=None, callbacks=()):
    from tunesmith.training import TrainResult

    model = _load(Path(resolved.path)).train()
    if MethodKind(cfg.method.kind) is MethodKind.HEAD:  # only the head trains: the bag of words stays as it was
        model.embed.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=cfg.training.learning_rate)
    ids, offsets = _batch(bundle.train[TEXT], model.embed.num_embeddings)
    y = torch.tensor([float(v == "yes") for v in bundle.train[LABEL]])
    history = []
    for step in range(cfg.toy.steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids, offsets), y)
        loss.backward()
        optimizer.step()
        history.append({"step": step + 1, "loss": loss.item()})
    model_dir = Path(run_dir) / "model"
    with atomic_dir(model_dir) as tmp:
        save_file(model.state_dict(), str(tmp / WEIGHTS))
        (tmp / "config.json").write_text(json.dumps({"architectures": ["ToyBagOfWords"],
                                                     "buckets": model.embed.num_embeddings}))
        write_model_card(tmp, cfg)
    return TrainResult(model_dir=model_dir, method=cfg.method.kind.value, precision="fp32",
                       trainable_params=sum(p.numel() for p in trainable),
                       total_params=sum(p.numel() for p in model.parameters()), train_runtime_s=0.0,
                       train_examples_per_s=0.0, best_metric=None, best_checkpoint=None, log_history=history)


# --- evaluation -----------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ToyReport(ReportBase):
    rows: int = 0
    majority: str = ""
    samples: list[dict] = field(default_factory=list)

    def html_sections(self) -> list[tuple[str, str]]:
        lead = (f"<p>Test rows: {self.rows}; the baseline always answers {esc(self.majority)}. "
                f"{bootstrap_note(self, 'test rows')}.</p>")
        return [("Baseline vs tuned (test split)", lead + comparison_table(self, "baseline (majority class)"))]


def evaluate(cfg, bundle, model_dir: Path, *, champion_dir=None, champion_name="champion", out_dir=None):
    model = _load(model_dir)
    with torch.no_grad():
        scores = torch.sigmoid(model(*_batch(bundle.test[TEXT], model.embed.num_embeddings))).numpy()
    truth = (bundle.test[LABEL] == "yes").to_numpy()
    majority = bundle.train[LABEL].mode().iat[0]
    tuned = ((scores >= 0.5) == truth).astype(float)
    base = (np.full(len(truth), majority == "yes") == truth).astype(float)
    boot = cfg.evaluation.bootstrap
    uplift = bootstrap_delta(len(truth), mean_stat(tuned), mean_stat(base), samples=boot.samples,
                             confidence=boot.confidence, seed=cfg.seed)
    return ToyReport(primary_metric="accuracy", tuned={"accuracy": float(tuned.mean())},
                     baseline={"accuracy": float(base.mean())}, uplift={"accuracy": uplift}, rows=len(truth),
                     majority=str(majority), bootstrap={"samples": boot.samples, "confidence": boot.confidence},
                     labels=list(bundle.labels))


# --- the model dir and serving --------------------------------------------------------------------------------


def describe_model(model_dir: Path) -> dict:
    return {"labels": ["no", "yes"]}


def load_served(model_dir: Path, served) -> None:
    served.model = _load(model_dir)
    served.output = "value"


def predict(served, texts: list[str]) -> list[float]:
    with torch.no_grad():
        return torch.sigmoid(served.model(*_batch(texts, served.model.embed.num_embeddings))).tolist()


TOY = Family(
    kind=KIND, summary="a text -> does it mention the keyword (a hashed bag of words, BCE)",
    configure=configure, section="toy", section_model=ToyConfig,
    read_table=read_table,
    check_rows=check_label_rows, label_set=label_set, label_distribution=label_distribution,
    redact=redact_text_column, label_checks=no_label_checks, train=train, evaluate=evaluate,
    describe_model=describe_model, load_served=load_served, predict=predict,
    routes=(text_route("/v1/toy-keywords", schemas.ScoreResponse, "scores", "P(the text mentions the keyword)."),),
    baseline_name="majority class", train_metrics=("accuracy", "loss"),
    methods=(MethodKind.FULL, MethodKind.HEAD), labeled=True, label_column=LABEL,
    # no native MLflow flavor fits a home-made model: its versions are python_function models only
    mlflow=text_mlflow(({"type": "double", "required": True},), pipeline_task="", flavor=None),
)
