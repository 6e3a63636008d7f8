"""Build candidates.jsonl for the faq-rerank example from the chatterbot-corpus wheel and builtin:minilm.

    python examples/faq-rerank/build_data.py

For each corpus question, the candidates are what a retriever would hand a reranker: the top CANDIDATES answers of
the whole corpus by cosine similarity under the base bi-encoder (builtin:minilm), plus the question's own answers
when the retriever missed them. Relevance is 1 for the question's own answers, 0 for the rest (hard negatives: the
answers the bi-encoder itself ranks high). Seeded; QUESTIONS questions at most.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "faq-retrieval"))
from build_data import corpus_dir, pairs  # noqa: E402  (the faq-retrieval example's corpus reader)

CANDIDATES = 8
QUESTIONS = 300
SEED = 7


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from tunesmith.hub import resolve_model

    answers_of: dict[str, set[str]] = defaultdict(set)
    for path in sorted(corpus_dir().glob("*.yml")):
        for question, answer in pairs(path):
            answers_of[question].add(answer)
    questions = sorted(answers_of)
    random.Random(SEED).shuffle(questions)
    questions = questions[:QUESTIONS]
    corpus = sorted({a for answers in answers_of.values() for a in answers})
    model = SentenceTransformer(resolve_model("builtin:minilm").path, device="cpu")
    q = model.encode(questions, normalize_embeddings=True, batch_size=64)
    d = model.encode(corpus, normalize_embeddings=True, batch_size=64)
    top = np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :CANDIDATES]
    rows = []
    for i, question in enumerate(questions):
        docs = [corpus[j] for j in top[i]]
        docs += sorted(answers_of[question] - set(docs))  # the retriever missed them: the reranker still sees them
        rows += [{"query": question, "document": doc, "relevance": int(doc in answers_of[question])} for doc in docs]
    out = HERE / "candidates.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{out}: {len(rows)} candidates for {len(questions)} questions, {sum(r['relevance'] for r in rows)} relevant")


if __name__ == "__main__":
    main()
