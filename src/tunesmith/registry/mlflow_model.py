"""Every registered version is an MLflow Model: `MLmodel`, signature, input example and environment files are logged
beside the model files, so MLflow's own tools (`mlflow.pyfunc.load_model`, `mlflow models serve`/`build-docker`,
MLServer, KServe, Seldon, `mlflow.evaluate`) load a version straight from the registry.

    with tempfile.TemporaryDirectory() as tmp:
        layout = prepare(model_dir, Path(tmp))   # None: a dir with no family card (logged as plain files, as before)
        # log model_dir's files under model/<layout.data>, then layout.files' under model/, MLmodel last
    weights = weights_dir(downloaded_version)   # where a version's model files are, in either layout

The `python_function` flavor's loader is `tunesmith.serving.pyfunc`: the family's own batch predict, the one its
HTTP route uses (calibration and thresholds included). Beside it the family's native flavor:
- `transformers` (classification, multi-label, regression, token classification, reranking, causal-lm): the model
  files stay at the artifact root (`model_binary: .`), the tokenizer is copied to `components/tokenizer` where the
  flavor reads it;
- `sentence_transformers` (embedding): the flavor reads a fixed subfolder, so the model files go under
  `model.sentence_transformer/` and `weights_dir` finds them there.
No flavor is written that would make MLflow run code from the artifact: a native flavor is left out when the
architecture or tokenizer class is not one transformers ships (MLflow would then trust remote code) or the dir's
config has an `auto_map`; the pyfunc flavor still is.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tunesmith.model_card import read_model_card

_log = logging.getLogger(__name__)

MLMODEL = "MLmodel"
LOADER_MODULE = "tunesmith.serving.pyfunc"
ST_DATA = "model.sentence_transformer"  # mlflow.sentence_transformers' fixed model path
COMPONENTS = "components/tokenizer"
# What a version needs to run its pyfunc: these packages at the versions that wrote it (requirements.txt).
REQUIREMENTS = ("tunesmith", "mlflow", "torch", "transformers", "sentence-transformers", "safetensors", "pandas")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model", "chat_template.jinja",
                   "chat_template.json")
PIPELINES = {"text-classification": "TextClassificationPipeline",
             "token-classification": "TokenClassificationPipeline",
             "text-generation": "TextGenerationPipeline",
             "feature-extraction": "FeatureExtractionPipeline"}


@dataclass(frozen=True)
class Layout:
    """Where a version's files go under its `model` artifact: the model dir's files under `data` ("." or
    ST_DATA), the files in `files` (MLmodel, examples, environment, tokenizer component) at the root."""

    data: str
    files: Path
    flavors: tuple[str, ...]
    model: Any  # the mlflow.models.Model written to files/MLmodel

    def record(self, client, run_id: str, artifact_path: str) -> None:
        """Tell the run it logged this model (the run tag MLflow's own log_model sets), so the MLflow UI shows the
        `model` folder as a model: its schema, input example and how to load it."""
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS

        self.model.run_id, self.model.artifact_path = run_id, artifact_path
        client.set_tag(run_id, MLFLOW_LOGGED_MODELS, json.dumps([self.model.get_tags_dict()]))


def prepare(model_dir: Path, staging: Path) -> Layout | None:
    """Write the MLflow files for `model_dir` into `staging`; None when the dir's family is unknown or has no
    MLflow description (its version is then logged as plain files, as versions were before)."""
    from tunesmith.families import UnknownFamily, get

    card = read_model_card(model_dir)
    if card is None:
        return None
    try:
        spec = get(card["family"]).mlflow
    except UnknownFamily:
        return None
    if spec is None:
        return None
    import pandas as pd
    from mlflow import pyfunc
    from mlflow.models import Model, ModelSignature
    from mlflow.models.utils import _save_example
    from mlflow.types.schema import ParamSchema, Schema

    native = _native_flavor(model_dir, spec)
    data = ST_DATA if native is not None and native[0] == "sentence_transformers" else "."
    model = Model(metadata={"tunesmith": {"family": card["family"], "name": card.get("name"),
                                          "base_model": card.get("base_model"), "method": card.get("method"),
                                          "data": data}})
    params = ParamSchema.from_json(json.dumps(list(spec.params))) if spec.params else None
    model.signature = ModelSignature(inputs=Schema.from_json(json.dumps(list(spec.inputs))),
                                     outputs=Schema.from_json(json.dumps(list(spec.outputs))), params=params)
    _save_example(model, pd.DataFrame(spec.example), str(staging))
    _write_environment(staging)
    pyfunc.add_to_model(model, loader_module=LOADER_MODULE, data=data, conda_env="conda.yaml",
                        python_env="python_env.yaml")
    flavors = ["python_function"]
    if native is not None:
        name, conf = native
        if name == "transformers" and conf.get("components"):
            _copy_tokenizer(model_dir, staging / COMPONENTS)
        model.add_flavor(name, **conf)
        flavors.append(name)
    model.save(str(staging / MLMODEL))
    return Layout(data=data, files=staging, flavors=tuple(flavors), model=model)


def weights_dir(artifact_dir: Path) -> Path:
    """The model files of a downloaded version: `artifact_dir` itself, or the python_function flavor's data folder
    when its MLmodel names one (embedding versions keep theirs in model.sentence_transformer/). Versions logged
    before MLmodel existed, and versions registered elsewhere in this layout, resolve the same way."""
    artifact_dir = Path(artifact_dir)
    data = _pyfunc_data(artifact_dir / MLMODEL)
    if data in (None, "", "."):
        return artifact_dir
    candidate = (artifact_dir / data).resolve()
    if not candidate.is_dir() or not candidate.is_relative_to(artifact_dir.resolve()):
        return artifact_dir  # an MLmodel pointing outside the version, or at nothing: the files are where they are
    return candidate


def _pyfunc_data(mlmodel: Path) -> str | None:
    if not mlmodel.is_file():
        return None
    import yaml

    try:
        conf = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
        return str(conf["flavors"]["python_function"].get("data") or "")
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        _log.warning("%s: not a readable MLmodel; reading the model files at the artifact root", mlmodel)
        return None


def _native_flavor(model_dir: Path, spec) -> tuple[str, dict] | None:
    """(flavor name, its MLmodel section), or None when writing it would let MLflow run code or cannot load."""
    if spec.flavor is None:
        return None
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("auto_map"):
        return None  # MLflow's loaders trust remote code for these
    if spec.flavor == "sentence_transformers":
        return _sentence_transformers_flavor(model_dir)
    return _transformers_flavor(model_dir, spec, config)


def _transformers_flavor(model_dir: Path, spec, config: dict) -> tuple[str, dict] | None:
    import transformers

    archs = config.get("architectures") or []
    if not archs or not hasattr(transformers, archs[0]) or spec.pipeline_task not in PIPELINES:
        return None
    try:
        tokenizer_class = json.loads((model_dir / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        return None  # no tokenizer saved beside the model: the pipeline could not be built
    if not isinstance(tokenizer_class, str) or not hasattr(transformers, tokenizer_class):
        tokenizer_class = "AutoTokenizer"  # a class transformers ships, so MLflow never trusts remote code for it
    return "transformers", {
        "task": spec.pipeline_task,
        "instance_type": PIPELINES[spec.pipeline_task],
        "pipeline_model_type": archs[0],
        "model_binary": ".",  # the safetensors dir is the artifact root: no copy of the weights
        "source_model_name": str(read_model_card(model_dir).get("base_model") or ""),
        "components": ["tokenizer"],
        "tokenizer_type": tokenizer_class,
        "transformers_version": transformers.__version__,
    }


def _sentence_transformers_flavor(model_dir: Path) -> tuple[str, dict] | None:
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        types = [str(m["type"]) for m in modules]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not types or not all(t.startswith("sentence_transformers.") for t in types):
        return None  # a custom module: SentenceTransformer would import code the artifact names
    return "sentence_transformers", {"sentence_transformers_version": _version("sentence-transformers")}


def _copy_tokenizer(model_dir: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, dest / name)


def _write_environment(staging: Path) -> None:
    """requirements.txt (the versions that wrote the model), python_env.yaml and conda.yaml referring to it."""
    import yaml

    reqs = [f"{name}=={v.split('+')[0]}" for name in REQUIREMENTS if (v := _version(name))]  # 2.13.0, not +cpu
    (staging / "requirements.txt").write_text("".join(r + "\n" for r in reqs))
    python = platform.python_version()
    pip = _version("pip")
    env = {"python": python, "build_dependencies": [f"pip=={pip}" if pip else "pip", "setuptools", "wheel"],
           "dependencies": ["-r requirements.txt"]}
    (staging / "python_env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
    conda = {"name": "mlflow-env", "channels": ["conda-forge"],
             "dependencies": [f"python={python}", "pip", {"pip": reqs}]}
    (staging / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False))


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
