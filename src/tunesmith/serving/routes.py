"""Route definitions families build from (tunesmith.contracts.Route); pydantic bodies only, so registering a family
does not start the server's imports.

    CLASSIFY = text_route("/v1/classify", s.ClassifyResponse, "results", "Label each text with its probability.")
"""

from __future__ import annotations

from tunesmith.contracts import Route
from tunesmith.serving import schemas as s


def text_route(path: str, response: type, key: str, summary: str) -> Route:
    """`{"input": text | [texts], "model"?}` -> `{key: [one result per text]}` (classify, score, extract)."""
    return Route(path=path, request=s.ClassifyRequest, response=response, summary=summary,
                 items=lambda body, texts: (texts(body.input), None),
                 respond=lambda answers, body, served: {key: [a.result for a in answers]})


CLASSIFY = text_route("/v1/classify", s.ClassifyResponse, "results", "Label each text with its calibrated probability.")
SCORE = text_route("/v1/score", s.ScoreResponse, "scores", "A regression model's score per text.")
def _extract_body(answers, body, served) -> dict:
    """The entities per text, and which texts the confidence floor made withhold entities (when any did)."""
    abstained = ["confidence_floor:abstained" in a.filters for a in answers]
    return {"entities": [a.result for a in answers], "abstained": abstained if any(abstained) else None}


EXTRACT = Route(path="/v1/extract", request=s.ClassifyRequest, response=s.ExtractResponse,
                summary="Entities (span, label, score) per text from a token-classification model.",
                items=lambda body, texts: (texts(body.input), None), respond=_extract_body)


def _embedding_items(body, texts):
    return texts(body.input), None


def _embedding_body(answers, body, served) -> dict:
    """OpenAI's embeddings list (base64 of little-endian float32 when asked) with the prompt tokens counted."""
    import base64

    import numpy as np

    inputs = [body.input] if isinstance(body.input, str) else list(body.input)
    tokens = sum(len(served.tokenizer(t)["input_ids"]) for t in inputs)

    def encoded(vector):
        if body.encoding_format == "base64":
            return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
        return vector

    data = [{"object": "embedding", "index": i, "embedding": encoded(a.result)} for i, a in enumerate(answers)]
    return {"object": "list", "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


EMBEDDINGS = Route(path="/v1/embeddings", request=s.EmbeddingRequest, response=s.EmbeddingResponse,
                   items=_embedding_items, respond=_embedding_body, tags=("openai",),
                   summary="OpenAI-compatible embeddings (mean pooled, normalised when the model says so).")


def _rerank_items(body, texts):
    texts(body.query, "query")
    if len(body.documents) > s.MAX_ITEMS:
        raise ValueError(f"documents: {len(body.documents)} documents; send at most {s.MAX_ITEMS} per request")
    texts(body.documents, "documents")
    return [(body.query, doc) for doc in body.documents], [{"query": body.query, "document": doc}
                                                           for doc in body.documents]


def _rerank_body(answers, body, served) -> dict:
    order = sorted(range(len(answers)), key=lambda i: -answers[i].result)[: body.top_n]
    return {"results": [{"index": i, "score": answers[i].result,
                         "document": body.documents[i] if body.return_documents else None} for i in order]}


RERANK = Route(path="/v1/rerank", request=s.RerankRequest, response=s.RerankResponse, items=_rerank_items,
               respond=_rerank_body,
               summary="Score each document against the query with a cross-encoder; most relevant first (top_n).")
