"""OpenAI's model listing (`GET /v1/models`, `GET /v1/models/{id}`) and its 404 for a `model` the server lacks.

    client.models.list()   # -> sentiment, sentiment:3, sentiment@champion, sentiment:4, sentiment@challenger

`NAME` is the routed default (champion, or the challenger for the canary share); `NAME:VERSION` and
`NAME@champion|challenger` pin one loaded version (no canary split, no shadow copy).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tunesmith.serving import schemas as s


def model_not_found(request: Request, message: str) -> JSONResponse:
    """404 in OpenAI's shape, so `openai.NotFoundError` carries code `model_not_found`."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": "model",
                      "code": "model_not_found"}, "request_id": getattr(request.state, "request_id", None)}
    return JSONResponse(body, status_code=404)


def model_cards(state) -> list[dict]:
    """One card per `model` value a request may send now."""
    if not state.slots:
        return []
    champion = state.champion()
    created = _created(champion)
    cards = [{"id": state.name, "object": "model", "created": created, "owned_by": "tunesmith",
              "model_version": None, "role": "routed", "task": champion.task, "backend": None}]
    for role, slot in state.slots.items():
        served = slot.served
        card = {"object": "model", "created": _created(served), "owned_by": "tunesmith",
                "model_version": served.version, "role": role.value, "task": served.task,
                "backend": getattr(served, "backend", None)}
        cards += [{**card, "id": served.tag}, {**card, "id": f"{state.name}@{role.value}"}]
    return cards


def _created(served) -> int:
    try:  # when the model files were written: the closest thing to OpenAI's `created` a model dir has
        return int((served.model_dir / "config.json").stat().st_mtime)
    except OSError:
        return 0


def add_model_routes(app: FastAPI, state) -> None:
    @app.get("/v1/models", response_model=s.ModelList, tags=["openai"])
    async def list_models():
        """What this server has loaded, in OpenAI's list shape (`client.models.list()`)."""
        return {"object": "list", "data": model_cards(state)}

    @app.get("/v1/models/{model_id}", response_model=s.ModelCard, tags=["openai"],
             responses={404: {"model": s.ErrorResponse}})
    async def retrieve_model(model_id: str, request: Request):
        """One loaded model (`client.models.retrieve(id)`); 404 model_not_found otherwise."""
        for card in model_cards(state):
            if card["id"] == model_id:
                return card
        return model_not_found(request, f"model {model_id!r} is not loaded here; GET /v1/models lists what is")
