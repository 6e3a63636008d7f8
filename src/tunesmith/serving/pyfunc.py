"""The `python_function` flavor of every registered version: MLflow loads a version with this module and predicts
with the family's own batch predict, so each row is answered exactly as `tunesmith serve` answers the same item.

    model = mlflow.pyfunc.load_model("models:/sentiment@champion")
    model.predict(pd.DataFrame({"text": ["great film", "dull plot"]}))
    # -> [{"label": "pos", "score": 0.93, "scores": {...}}, ...]   (the `results` of /v1/classify)

`mlflow models serve -m models:/sentiment@champion` serves the same through MLflow's scoring server. The frame's
columns are the family's signature (registry/mlflow_model.py writes it): `text` for the text families, `query` and
`document` for a reranker, `messages` for a chat model (with params max_tokens, temperature, top_p). The weights
load as tunesmith serve loads them: safetensors only, no remote code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.model_card import read_model_card
from tunesmith.serving.models import ServeLoadError, load_served

ROWS_PER_CALL = 64  # rows handed to the family's predict at once (a large frame runs in these slices)


def _load_pyfunc(data_path: str, model_config: dict | None = None) -> TunesmithModel:
    """MLflow's entry point (the flavor's `loader_module`): `data_path` is the version's model files."""
    return TunesmithModel(Path(data_path))


class TunesmithModel:
    """A loaded version answering frames: `predict(frame, params)` -> one result per row, in order."""

    def __init__(self, model_dir: Path):
        card = read_model_card(model_dir) or {}
        self.served = load_served(model_dir, name=str(card.get("name") or Path(model_dir).name), version=0)
        self.spec = self.served.family.mlflow
        if self.spec is None:
            raise ServeLoadError(f"{model_dir}: the {self.served.task} family describes no MLflow signature; serve it "
                                 "with `tunesmith serve`")
        self.columns = [col.get("name") for col in self.spec.inputs]

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> list:
        rows = as_rows(model_input, self.columns)
        out: list = []
        for start in range(0, len(rows), ROWS_PER_CALL):
            chunk = rows[start:start + ROWS_PER_CALL]
            try:
                items = self.spec.items(self.served, chunk, dict(params or {}))
            except ValueError as exc:  # name the row in the whole frame, not in its slice
                raise ValueError(_shift_row(str(exc), start)) from None
            results = self.served.family.predict(self.served, items)
            out += [self.spec.result(self.served, r) for r in results]
        return out


def as_rows(model_input: Any, columns: Sequence[str]) -> list[dict]:
    """A pandas frame, a dict of columns, a list of row dicts, or texts (for a one-column signature) as row dicts."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        return model_input.to_dict("records")
    if isinstance(model_input, pd.Series):
        model_input = model_input.tolist()
    if isinstance(model_input, Mapping):
        values = {k: v if isinstance(v, list | tuple) else [v] for k, v in model_input.items()}
        return pd.DataFrame(values).to_dict("records")
    if hasattr(model_input, "tolist") and not isinstance(model_input, str):  # a numpy array
        model_input = model_input.tolist()
    if isinstance(model_input, str):
        model_input = [model_input]
    if isinstance(model_input, list):
        if all(isinstance(row, Mapping) for row in model_input):
            return [dict(row) for row in model_input]
        if len(columns) == 1:
            return [{columns[0]: value} for value in model_input]
    raise ValueError(f"cannot read a {type(model_input).__name__} as rows; send a frame with the columns "
                     f"{', '.join(map(repr, columns))}")


def _shift_row(message: str, offset: int) -> str:
    if offset and message.startswith("row "):
        number, _, rest = message[4:].partition(":")
        if number.isdigit():
            return f"row {int(number) + offset}:{rest}"
    return message
