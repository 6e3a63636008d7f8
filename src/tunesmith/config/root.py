"""`Config`: the whole file, with the cross-section defaults and checks each task family needs."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from tunesmith.config.base import (
    StrictModel,
    package_file,
)
from tunesmith.config.cost import CostConfig, ModelCardConfig
from tunesmith.config.data import (
    DataConfig,
)
from tunesmith.config.jobs import JobsConfig
from tunesmith.config.loop import (
    MonitoringConfig,
    RetrainConfig,
    SearchConfig,
)
from tunesmith.config.serving import (
    RegistryConfig,
    ReviewConfig,
    ServingConfig,
)
from tunesmith.config.training import (
    NAME_RE,
    EvaluationConfig,
    GatesConfig,
    MethodConfig,
    ModelConfig,
    TrainingConfig,
)


class Config(StrictModel):
    """A tunesmith job: data, model, method, training, evaluation, gates and registry.

    `task` names a registered family (tunesmith.families); a family's own section (`chat:`, `embedding:`, ...)
    is declared by the family and validated here like any other section, with the same key paths in errors.
    """

    # Family sections are not fields of this class: `_family_sections` validates them and keeps them as extras.
    model_config = ConfigDict(extra="allow", validate_default=True)

    name: str = Field(..., description="the registered model name")
    task: str = Field("classification", description="the task family: classification, multi-label, regression, "
                      "token-classification, embedding, reranking, causal-lm, image-classification (or one a plugin "
                      "registers)")
    seed: int = 42
    output_dir: str = ".tunesmith/runs"
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    search: SearchConfig | None = Field(None, description="hyperparameter search for `tunesmith tune`")
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    model_card: ModelCardConfig = Field(default_factory=ModelCardConfig)

    # Where the config came from; relative data paths resolve against its folder. Not a config key.
    _source_path: str | None = PrivateAttr(None)

    @property
    def source_path(self) -> str | None:
        return self._source_path

    @model_validator(mode="wrap")
    @classmethod
    def _family_sections(cls, data: Any, handler) -> Config:
        """Validate the generic sections (handler) and the families' sections together, errors all at once; then
        the config's family applies its defaults and checks (`Task.configure`)."""
        if not isinstance(data, dict):
            return handler(data)
        from tunesmith.families import sections

        data = _multi_label_alias(data)
        known = sections()
        errors: list[InitErrorDetails] = []
        generic: dict[str, Any] = {}
        parsed: dict[str, Any] = {}
        for key, value in data.items():
            if key in cls.model_fields:
                generic[key] = value
            elif key in known:
                try:
                    parsed[key] = known[key].model_validate({} if value is None else value)
                except ValidationError as exc:
                    errors += [_detail(e, (key, *e["loc"])) for e in exc.errors()]
            else:
                errors.append(InitErrorDetails(type="extra_forbidden", loc=(key,), input=value))
        try:
            cfg = handler(generic)
        except ValidationError as exc:
            errors = [*(_detail(e, e["loc"]) for e in exc.errors()), *errors]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        for key, model in known.items():
            cfg.__pydantic_extra__[key] = parsed.get(key) or model()
        cfg._apply_family()
        return cfg

    def _apply_family(self) -> None:
        from tunesmith.config.family_rules import check_for_family
        from tunesmith.families import get

        check_for_family(self, get(self.task))

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from tunesmith.families import UnknownFamily, get

        try:
            return get(value).kind
        except UnknownFamily as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _slice_columns_loaded(self) -> Config:
        # A column named in evaluation.slices must be kept by the data stage; naming it once is enough.
        extra = [c for c in self.evaluation.slices if c != "text_length" and c not in self.data.slice_columns]
        self.data.slice_columns = [*self.data.slice_columns, *extra]
        return self

    @model_validator(mode="after")
    def _provider_backend(self) -> Config:
        if self.training.backend == "local":
            return self
        if self.task != "causal-lm":  # the provider API fine-tunes chat models only
            raise ValueError(f"training.backend: a provider fine-tunes chat models (task: causal-lm), not "
                             f"{self.task}")
        if self.training.provider is None:
            raise ValueError("training.provider: backend openai-compatible needs provider.base_url (and "
                             "provider.api_key_env naming the key's environment variable)")
        return self

    @model_validator(mode="after")
    def _search_keys(self) -> Config:
        # A typo in a searched key would silently search nothing: every key path must name a config field.
        if self.search is None:
            return self
        problems = []
        for where, keys in (("space", self.search.space), ("overrides", self.search.overrides)):
            for key in keys:
                parts = key.split(".")
                valid = fields_at(tuple(parts))
                if parts[0] == "search" or parts[-1] not in valid:
                    close = difflib.get_close_matches(parts[-1], valid, n=1)
                    hint = f"did you mean '{'.'.join([*parts[:-1], close[0]])}'?" if close else "use a key path such as training.learning_rate"
                    problems.append(f"search.{where}.{key}: not a config key ({hint})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _tenant_key_paths(self) -> Config:
        # jobs.tenant_keys are key paths like search's: a typo would silently allow nothing (or refuse everything).
        problems = []
        for key in self.jobs.tenant_keys:
            parts = key.split(".")
            valid = fields_at(tuple(parts))
            if parts[-1] not in valid:
                close = difflib.get_close_matches(parts[-1], valid, n=1)
                hint = f"did you mean '{'.'.join([*parts[:-1], close[0]])}'?" if close else "use a key path such as training.epochs"
                problems.append(f"jobs.tenant_keys: {key} is not a config key ({hint})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError("use letters, digits, '-', '_' or '.', starting with a letter or digit")
        return v

    def resolve_path(self, p: str) -> Path:
        """A data path as written in the config, relative to the config file's folder.

        `pkg:<package>/<file>` names a file shipped inside an installed Python package (found without importing it).
        """
        if p.startswith("pkg:"):
            return package_file(p)
        path = Path(p).expanduser()
        if not path.is_absolute() and self.source_path:
            path = Path(self.source_path).parent / path
        return path

    def fingerprint(self) -> str:
        """sha256 of the resolved config, for lineage."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _multi_label_alias(data: dict) -> dict:
    """`data.multi_label: true` under the default task is the multi-label family (and that family's rows are lists)."""
    rows = data.get("data")
    flagged = isinstance(rows, dict) and rows.get("multi_label") is True
    task = data.get("task", "classification")
    if flagged and task == "classification":
        return {**data, "task": "multi-label"}
    if task == "multi-label" and isinstance(rows, dict) and "multi_label" not in rows:
        return {**data, "data": {**rows, "multi_label": True}}
    return data


def _detail(error: dict, loc: tuple) -> InitErrorDetails:
    """A pydantic error re-raised at `loc` (a family section's errors get the section's name in front)."""
    detail = InitErrorDetails(type=error["type"], loc=loc, input=error.get("input"))
    if error.get("ctx"):
        detail["ctx"] = error["ctx"]
    return detail


def section_models() -> dict[str, type[BaseModel]]:
    """Every top-level section: the generic ones and the families' (for hints and `tunesmith schema`)."""
    from tunesmith.families import sections

    generic = {k: f.annotation for k, f in Config.model_fields.items()}
    return {**{k: v for k, v in generic.items() if isinstance(v, type) and issubclass(v, BaseModel)}, **sections()}


def fields_at(loc: tuple) -> list[str]:
    """The valid field names of the model at a key path, for 'did you mean' hints."""
    if len(loc) <= 1:
        return [*Config.model_fields, *section_models()]
    model: type[BaseModel] | None = section_models().get(loc[0]) if isinstance(loc[0], str) else None
    for part in loc[1:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        ann = model.model_fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(model.model_fields) if model else []


def json_schema() -> dict:
    """Config's JSON Schema with the families' sections in it (what `tunesmith schema` prints)."""
    schema = Config.model_json_schema()
    schema["additionalProperties"] = False
    defs = schema.setdefault("$defs", {})
    for key, model in sorted(section_models().items()):
        if key in schema["properties"]:
            continue
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
        schema["properties"][key] = {"$ref": f"#/$defs/{model.__name__}"}
    return schema
