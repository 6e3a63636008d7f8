"""`registry:`, `serving:` (rollout, inference options, prediction log) and `review:`."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from tunesmith.config.base import (
    StrictModel,
    check_regexes,
)


class RegistryConfig(StrictModel):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: sqlite under .tunesmith/")
    experiment: str | None = None  # default: the config's name
    auto_register: bool = Field(True, description="register a version when the gates pass")
    owner: str | None = Field(None, description="registered models this config creates are tagged with this owner, "
                              "and no version is added to a model another owner created (the jobs API sets it to "
                              "the job's tenant)")


class CanaryConfig(StrictModel):
    percent: float = Field(0, ge=0, le=100, description="share of traffic (0-100) routed to the challenger")


class RollbackConfig(StrictModel):
    enabled: bool = Field(True, description="stop routing to the challenger when it breaches an SLO")
    window: int = Field(200, ge=5, description="judge the challenger on its last N requests")
    min_requests: int = Field(20, ge=1, description="requests in the window before the SLOs are judged")
    max_error_rate: float = Field(0.05, ge=0, le=1, description="challenger error share that triggers rollback")
    max_p95_ms: float | None = Field(None, gt=0, description="challenger p95 latency (ms) that triggers rollback")


class InferenceConfig(StrictModel):
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="bf16: CPU autocast, used only if it matches fp32")
    quantize: Literal["none", "int8"] = Field("none", description="int8: dynamic quantization of Linear layers")
    tolerance: float = Field(0.05, gt=0, description="max |fp32 - optimized| on probe outputs (probabilities / "
                             "cosine distance / next-token probabilities); larger falls back to fp32")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None: torch's default")
    backend: Literal["torch", "onnx"] = Field("torch", description="onnx: export encoder models (classification, "
                                              "regression, embedding) to ONNX Runtime (with quantize: int8, ORT's "
                                              "dynamic int8), used only if it matches fp32")


class PredictionLogConfig(StrictModel):
    enabled: bool = True
    url: str | None = Field(None, description="SQLAlchemy URL; default sqlite under .tunesmith/predictions.db")
    sample_rate: float = Field(1.0, ge=0, le=1, description="share of predictions written")
    redact_pii: bool = Field(True, description="replace PII in logged inputs with typed placeholders (<EMAIL>, ...) "
                             "using the data gates' regex+checksum detectors")


class FiltersConfig(StrictModel):
    """What a served answer passes before the caller sees it (tunesmith.serving.filters); every action is counted
    (tunesmith_filter_actions_total) and logged with the prediction."""

    confidence_floor: float | None = Field(None, gt=0, lt=1, description="a classifier's (or multi-label model's) "
                                           "answer less sure than this abstains: label null, \"abstained\": true, "
                                           "and `tunesmith review` queues it; an extractor withholds the entities "
                                           "scored below it; null: never")
    redact_pii: bool = Field(False, description="generated text (chat, completions) with PII (the data gates' "
                             "detectors) is redacted before it is returned or logged")
    deny: list[str] = Field(default_factory=list, description="regexes; generated text matching one is replaced by "
                            "`refusal` (finish_reason content_filter)")
    refusal: str = Field("I can't help with that.", description="what a denied answer says instead")
    json_schema: dict | None = Field(None, description="chat and completions: an answer must be JSON valid against "
                                     "this schema (a ```json fence is allowed); null: no check")
    on_invalid_json: Literal["retry", "refuse"] = Field("retry", description="an invalid answer is generated once "
                                                        "more (sampled), then refused; or refused at once")

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, v: dict | None) -> dict | None:
        if v is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(v).check_schema(v)
            except jsonschema.exceptions.SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return v

    @field_validator("deny")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        return check_regexes(v)

    @property
    def text_active(self) -> bool:
        return self.redact_pii or bool(self.deny) or self.json_schema is not None


def check_engine_url(url: str) -> str:
    """An upstream engine's OpenAI API root: http(s)://host[:port][/path], no query, no password in the URL."""
    from urllib.parse import urlsplit

    hint = "write the engine's OpenAI API root, e.g. http://gpu-1:8000/v1"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL ({exc}); {hint}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host; {hint}")
    if parts.password or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: no password, query or fragment in the URL; the key goes in the environment "
                         "variable that api_key_env names")
    return url.rstrip("/")


class EngineTarget(StrictModel):
    """Where one registered version generates: an OpenAI-compatible server and the model name it serves it under."""

    base_url: str | None = Field(None, description="the engine's OpenAI API root (http://gpu-1:8000/v1); default: "
                                 "serving.upstream.base_url")
    model: str | None = Field(None, description="the engine's name for this version (vLLM --served-model-name or "
                              "--lora-modules name); default: serving.upstream.model")

    _url = field_validator("base_url")(lambda v: v if v is None else check_engine_url(v))


class UpstreamConfig(StrictModel):
    """`serving.engine: openai-compatible`: the engine (vLLM, SGLang, TGI, any OpenAI-API server) that generates
    for each served version; tunesmith stays the front door (auth, canary, shadow, rollback, log, metrics)."""

    base_url: str | None = Field(None, description="every version's engine unless `versions` names its own")
    model: str = Field("{name}-v{version}", description="the engine's model name; {name} and {version} are the "
                       "registered model's (what `tunesmith serve --engine vllm` launches it as)")
    versions: dict[int, EngineTarget] = Field(default_factory=dict, description="per registered version: its own "
                                              "base_url and/or model")
    api_key_env: str | None = Field(None, description="env var holding the engine's API key (sent as a bearer "
                                    "token; never the key itself in YAML); None: no key")
    timeout_s: float = Field(120, gt=0, description="longest wait for the engine's next bytes (a streamed chunk or "
                             "the whole answer)")
    connect_timeout_s: float = Field(5, gt=0, description="longest wait to connect to the engine")
    max_connections: int = Field(256, ge=1, description="concurrent requests to one engine")

    _url = field_validator("base_url")(lambda v: v if v is None else check_engine_url(v))

    @field_validator("model")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            v.format(name="m", version=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{v!r}: only {{name}} and {{version}} are filled in ({type(exc).__name__}: {exc})") \
                from None
        return v

    def target(self, name: str, version: int) -> tuple[str, str]:
        """(base_url, model) of one registered version; ValueError naming the key when it has no engine."""
        own = self.versions.get(int(version)) or EngineTarget()
        base_url = own.base_url or self.base_url
        if base_url is None:
            raise ValueError(f"serving.upstream.versions: no engine for {name} version {version}; set "
                             f"serving.upstream.base_url or serving.upstream.versions.{version}.base_url")
        return base_url, (own.model or self.model).format(name=name, version=version)


class ServingConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    challenger: bool = Field(False, description="also load the `challenger` alias (implied by canary.percent > 0 or shadow)")
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    shadow: bool = Field(False, description="copy each request to the challenger; its answer is logged, never returned")
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)
    caller_key_header: str = Field("x-caller-key", description="header whose value keeps a caller on one model")
    max_batch_size: int = Field(16, ge=1)
    max_wait_ms: float = Field(5, ge=0, description="how long a batch waits to fill up")
    max_queue: int = Field(256, ge=1, description="queued requests per model before answering 429")
    workers: int = Field(1, ge=1, le=64, description="batches run at once per model; on CPU, one per core with "
                         "inference.num_threads: 1")
    request_timeout_s: float = Field(30, gt=0)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_new_tokens: int = Field(256, ge=1, description="cap on generated tokens per request")
    poll_interval_s: float = Field(5, gt=0, description="how often the registry aliases are checked for changes")
    shared_state: str | None = Field(None, description="where the replicas of one model share the challenger's "
                                     "outcome window and the rollback decision: redis://host:6379/0 or a SQLAlchemy "
                                     "URL (postgresql+psycopg://..., sqlite:///path/rollout.db); None: each server "
                                     "judges its own requests")
    auth_token_env: str = Field("TUNESMITH_SERVE_TOKEN", description="env var holding the bearer token; "
                                "when it is set, every route except /healthz and /readyz needs it")
    metrics_token_env: str | None = Field(None, description="env var holding a separate bearer token for /metrics "
                                          "(a scraper's); when it is set, /metrics takes that token instead of "
                                          "auth_token_env's")
    max_input_chars: int = Field(100_000, ge=1, description="characters per request text (input, query, document, "
                                 "message, prompt); longer answers 422 before anything reaches the model")
    shutdown_grace_s: float = Field(30, gt=0, description="SIGTERM: seconds to finish in-flight requests")
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    predictions: PredictionLogConfig = Field(default_factory=PredictionLogConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    review_page: bool = Field(False, description="also serve the human review page at /review (same token, the "
                              "prediction log's database)")
    generation: Literal["batched", "sequential"] = Field("batched", description="chat models: batched: "
                                                        "concurrent requests (streamed or not, any sampling "
                                                        "settings) are generated together, joining and leaving the "
                                                        "batch at each token (continuous batching, up to "
                                                        "max_batch_size rows); sequential: one generate per request "
                                                        "(streams one at a time)")

    engine: Literal["local", "openai-compatible"] = Field("local", description="local: generate in this process; "
                                                           "openai-compatible: forward chat and completions to the "
                                                           "engine in serving.upstream (vLLM, SGLang, TGI, ...)")
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)

    _shared_state = field_validator("shared_state")(lambda v: check_shared_state(v))

    @model_validator(mode="after")
    def _engine_named(self):
        if self.engine == "openai-compatible" and self.upstream.base_url is None and not any(
                t.base_url for t in self.upstream.versions.values()):
            raise ValueError("engine: openai-compatible needs serving.upstream.base_url, the engine's URL "
                             "(http://gpu-1:8000/v1), or one per version in serving.upstream.versions")
        return self


SQL_DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb", "mssql", "oracle")


def check_shared_state(url: str | None) -> str | None:
    """A `serving.shared_state` URL that Redis or SQLAlchemy can open and that every replica can reach."""
    if url is None:
        return None
    scheme, sep, rest = url.partition("://")
    dialect = scheme.split("+", 1)[0].lower()
    hint = ("write redis://host:6379/0 (rediss:// for TLS) or a SQLAlchemy URL such as "
            "postgresql+psycopg://user@host/db or sqlite:///path/rollout.db")
    if not sep or dialect not in ("redis", "rediss", *SQL_DIALECTS):
        raise ValueError(f"must be a Redis or SQLAlchemy URL; {hint}")
    if dialect == "sqlite" and rest.strip("/") in ("", ":memory:"):
        raise ValueError("an in-memory SQLite database is not shared between processes; name a file every replica "
                         "can reach (sqlite:///path/rollout.db), or use Redis or Postgres")
    if dialect in ("redis", "rediss"):
        host, _, db = rest.partition("?")[0].partition("/")
        if not host.rpartition("@")[2]:
            raise ValueError(f"names no host; {hint}")
        if db and not db.isdigit():
            raise ValueError(f"the Redis database after the host is a number (redis://host:6379/0), not {db!r}")
    return url


class ReviewSource(str, Enum):
    """Where a review item came from."""

    LOW_CONFIDENCE = "low_confidence"
    SHADOW_DISAGREEMENT = "shadow_disagreement"
    LABEL_ISSUE = "label_issue"
    RANDOM = "random_sample"  # a seeded share of all served answers: unbiased estimates of live quality


class ReviewStrategy(str, Enum):
    """Uncertainty sampling: which items a reviewer sees first (see review/ordering.py)."""

    MARGIN = "margin"
    LEAST_CONFIDENCE = "least_confidence"
    ENTROPY = "entropy"


class ReviewEmbeddings(str, Enum):
    BASE = "base"  # mean-pooled frozen model.base embeddings (the data gates' probe features)
    TFIDF = "tfidf"  # TF-IDF + SVD: no model needed
    NONE = "none"  # uncertainty order only


class ReviewConfig(StrictModel):
    """The human review queue (`tunesmith review`): what is queued, in which order, and where the page listens."""

    sources: list[ReviewSource] = Field(default_factory=lambda: list(ReviewSource), description="what goes to review")
    confidence_threshold: float = Field(0.6, ge=0, le=1, description="served predictions below this confidence "
                                        "are queued (low_confidence)")
    random_share: float = Field(0.05, ge=0, le=1, description="share of the other served answers queued at random "
                                "(random_sample: what reviewers see is then not only the hard cases, so their "
                                "labels also estimate live quality without bias); chosen by a hash of the request, "
                                "so re-running enqueue picks the same ones")
    strategy: ReviewStrategy = Field(ReviewStrategy.MARGIN, description="uncertainty score: margin, least_confidence "
                                     "or entropy of the served probabilities")
    diversity: float = Field(0.3, ge=0, le=1, description="MMR weight of diversity vs uncertainty when ordering the "
                             "queue (0: uncertainty only)")
    embeddings: ReviewEmbeddings = Field(ReviewEmbeddings.BASE, description="item embeddings for diversity: base "
                                         "(model.base encoder), tfidf, or none")
    label_issues_file: str | None = Field(None, description="a data gates' label_issues.jsonl to queue; default: the "
                                          "newest run's (data.checks.label_issues.review_file: true writes it)")
    labels: list[str] | None = Field(None, description="label buttons in this order (digits 1-9); default: "
                                     "data.labels, else the labels seen in the queue")
    reviewer: str | None = Field(None, description="the reviewer name when the page has no per-reviewer tokens "
                                 "(`--reviewer`); default: without a token the OS user name, with the shared "
                                 "serving token each reviewer enters a name once")
    reviewer_tokens_env: str = Field("TUNESMITH_REVIEW_TOKENS", description="env var holding per-reviewer tokens, "
                                     "`name=token,name=token` (16+ characters each); when set, each reviewer signs "
                                     "in with their own token, which names them, and the serving token is not used")
    allowed_hosts: list[str] | None = Field(None, description="Host header names the page answers to (a reverse "
                                            "proxy's name, say); default: localhost names when bound to a loopback "
                                            "address, any otherwise; ['*']: any")
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)


