"""Continuous batching for a served chat model: concurrent requests are generated as one batch, joining it at a
step boundary and leaving it when they are done (EOS, max_tokens, a stop string, or the caller cancelling).

    scheduler = GenerationScheduler(served, max_batch_size=16, max_wait_ms=5, result=Generation, apply_stop=cut)
    [generation] = scheduler.generate([(prompt, GenParams(max_tokens=64))])     # blocks until done
    request = scheduler.submit(prompt, GenParams(), stream=True)
    for piece in request: ...                                                   # text pieces as they come
    request.cancel()                                                            # its row stops being generated

One worker thread per model runs a step loop over `model(...)` with a transformers DynamicCache: new requests are
prefilled together (left-padded), sampled once, and their cache is left-padded to the running batch's length and
stacked under it; every step then feeds each row's last token. Rows that finish are dropped from the cache, and
columns no row attends to any more are cut. Sampling is per row: greedy rows take the argmax (the same tokens as
an unbatched `generate`), sampled rows their own temperature and top_p (after the model's top_k, as `generate`).

transformers' own continuous-batching manager (`generate_batch`, 5.x) was not used: it takes one `do_sample` for
the whole manager, so greedy and sampled requests could not share a batch.

`result(text, prompt_tokens, completion_tokens, finish_reason)` builds what `generate` returns and
`apply_stop(text, stops) -> (text, stopped)` cuts at a stop string (serve.py's Generation and _apply_stop; passed in
so that this module does not import serve.py, which imports it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any

import torch
import torch.nn.functional as F

_log = logging.getLogger("tunesmith.serving")

_DONE = object()


class GenRequest:
    """One request in the scheduler: iterate it for its text pieces (stream=True), or wait for `result()`."""

    def __init__(self, prompt_ids: list[int], params: Any, stream: bool, result: Any):
        self.prompt_ids = prompt_ids
        self.params = params
        self.stream = stream
        self._result = result
        self.tokens: list[int] = []
        self.text = ""
        self.sent = 0  # characters of `text` already handed to the reader
        self.finish_reason: str | None = None
        self.generation: Any = None
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._pieces: queue.SimpleQueue = queue.SimpleQueue()

    # --- the caller's side -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop generating this request (the client left); its row leaves the batch at the next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def result(self, timeout: float | None = None):
        if not self._done.wait(timeout):
            self.cancel()
            raise TimeoutError(f"no generation within {timeout:g}s")
        if self.error is not None:
            raise self.error
        assert self.generation is not None
        return self.generation

    def __iter__(self):
        return self

    def __next__(self) -> str:
        piece = self._pieces.get()
        if piece is _DONE:
            self._pieces.put(_DONE)  # later calls end too
            if self.error is not None:
                raise self.error
            raise StopIteration
        return piece

    # --- the scheduler's side --------------------------------------------------------------------------

    def _emit(self, upto: int) -> None:
        if self.stream and upto > self.sent:
            self._pieces.put(self.text[self.sent:upto])
            self.sent = upto

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason
        self._emit(len(self.text))
        self.generation = self._result(self.text, len(self.prompt_ids), len(self.tokens), reason)
        self._done.set()
        self._pieces.put(_DONE)

    def _fail(self, exc: BaseException) -> None:
        if self._done.is_set():
            return
        self.error = exc
        self._done.set()
        self._pieces.put(_DONE)

    @property
    def done(self) -> bool:
        return self._done.is_set()


class GenerationScheduler:
    """Continuous batching of one served causal LM (at most `max_batch_size` rows generated at once)."""

    def __init__(self, served, *, max_batch_size: int, max_wait_ms: float, result, apply_stop,
                 idle_exit_s: float = 5.0):
        self.served = served
        self.result, self.apply_stop = result, apply_stop
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.idle_exit_s = idle_exit_s
        gen_config = served.model.generation_config
        eos = gen_config.eos_token_id if gen_config.eos_token_id is not None else served.tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list | tuple) else [eos]) - {None}
        self.top_k = 50 if gen_config.top_k is None else int(gen_config.top_k)  # unset: generate's default, 50
        self._cond = threading.Condition()
        self._pending: deque[GenRequest] = deque()
        self._thread: threading.Thread | None = None
        # what ran, for tests and benchmarks: decode steps, prefills, requests that joined a running batch, the
        # most rows in one step, tokens generated, requests cancelled
        self.stats = {"steps": 0, "prefills": 0, "joined": 0, "max_rows": 0, "tokens": 0, "cancelled": 0}
        self.active = 0  # rows in the running batch
        self.busy_s = 0.0  # seconds spent running the model (prefills and steps), for cost metering

    @staticmethod
    def unsupported(model) -> str | None:
        """Why this model cannot be continuously batched here (None: it can): a sliding-window or hybrid cache
        cannot be left-padded and stacked, and logits processors beyond temperature/top_k/top_p are not applied."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        layers = DynamicCache(config=model.config).layers
        if any(type(layer) is not DynamicLayer for layer in layers):
            return "its cache has sliding-window or hybrid layers"
        gc = model.generation_config
        neutral = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "typical_p": 1.0}
        others = ("no_repeat_ngram_size", "bad_words_ids", "min_new_tokens", "min_length", "min_p", "epsilon_cutoff",
                  "eta_cutoff", "suppress_tokens", "begin_suppress_tokens", "forced_bos_token_id",
                  "forced_eos_token_id", "sequence_bias", "exponential_decay_length_penalty")
        set_here = [k for k, v in neutral.items() if getattr(gc, k, None) not in (None, v)]
        set_here += [k for k in others if getattr(gc, k, None)]
        if set_here:
            return f"its generation_config sets {', '.join(set_here)}, which the scheduler does not apply"
        return None

    # --- submitting ------------------------------------------------------------------------------------

    def submit(self, prompt: str, params, *, stream: bool = False) -> GenRequest:
        ids = self.served.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        request = GenRequest(list(ids), params, stream, self.result)
        with self._cond:
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name=f"generate-{self.served.tag}")
                self._thread.start()
            self._cond.notify()
        return request

    def generate(self, items: list[tuple[str, Any]], timeout: float | None = None) -> list:
        """Each prompt's generation (non-streamed); blocks until all are done."""
        requests = [self.submit(prompt, params) for prompt, params in items]
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            return [r.result(None if deadline is None else max(0.0, deadline - time.monotonic())) for r in requests]
        finally:
            for r in requests:
                r.cancel()  # no-op for the finished ones; frees the rows of a caller that timed out

    # --- the step loop ---------------------------------------------------------------------------------

    def _take(self, rows: list[GenRequest]) -> list[GenRequest] | None:
        """The requests that join the batch now (waiting up to max_wait_ms for a fresh batch to fill up);
        None when the worker has been idle for idle_exit_s and ends."""
        with self._cond:
            if not rows:
                if not self._pending and not self._cond.wait_for(lambda: self._pending, self.idle_exit_s):
                    self._thread = None
                    return None
                deadline = time.monotonic() + self.max_wait
                while len(self._pending) < self.max_batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            joining = []
            while self._pending and len(rows) + len(joining) < self.max_batch_size:
                request = self._pending.popleft()
                if request.cancelled:
                    self.stats["cancelled"] += 1
                    request._finish("cancelled")
                else:
                    joining.append(request)
            return joining

    def _loop(self) -> None:
        rows: list[GenRequest] = []
        cache, mask = None, None  # the running batch: its DynamicCache and attention mask [rows, columns]
        while True:
            joining = self._take(rows)
            if joining is None:
                return
            started = time.perf_counter()
            try:
                with self.served.lock, torch.inference_mode(), self.served.autocast_ctx():
                    if joining:
                        rows, cache, mask = self._admit(rows, cache, mask, joining)
                    rows, cache, mask = self._drop_finished(rows, cache, mask)
                    if rows:
                        mask = self._step(rows, cache, mask)
                        rows, cache, mask = self._drop_finished(rows, cache, mask)
            except Exception as exc:  # the model failed: every request in the batch fails with it
                _log.warning("generation batch of %s failed: %s: %s", self.served.tag, type(exc).__name__, exc)
                for request in rows + joining:
                    request._fail(exc)
                rows, cache, mask = [], None, None
            self.busy_s += time.perf_counter() - started
            self.active = len(rows)

    def _admit(self, rows, cache, mask, joining: list[GenRequest]):
        """Prefill the joining requests as one left-padded batch, sample their first token, stack them under the
        running batch (both caches left-padded to the longer one)."""
        from transformers import DynamicCache

        model = self.served.model
        width = max(len(r.prompt_ids) for r in joining)
        pad = self.served.tokenizer.pad_token_id or 0
        device = model.device
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in joining], device=device)
        new_mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in joining],
                                device=device)
        positions = (new_mask.cumsum(-1) - 1).clamp(min=0)
        new_cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, attention_mask=new_mask, position_ids=positions, past_key_values=new_cache,
                    cache_position=torch.arange(width, device=device), use_cache=True, logits_to_keep=1)
        self.stats["prefills"] += 1
        self._accept(joining, self._sample(out.logits[:, -1], joining))
        keep = [i for i, r in enumerate(joining) if not r.done]
        if not keep:
            return rows, cache, mask
        if len(keep) < len(joining):
            new_cache.batch_select_indices(torch.tensor(keep, device=device))
            new_mask = new_mask[keep]
        joined = [joining[i] for i in keep]
        if cache is None:
            return joined, new_cache, new_mask
        self.stats["joined"] += len(joined)
        length = max(mask.shape[1], new_mask.shape[1])
        for old_layer, new_layer in zip(cache.layers, new_cache.layers, strict=True):
            old_layer.keys = torch.cat([_left_pad(old_layer.keys, length), _left_pad(new_layer.keys, length)])
            old_layer.values = torch.cat([_left_pad(old_layer.values, length), _left_pad(new_layer.values, length)])
        mask = torch.cat([F.pad(mask, (length - mask.shape[1], 0)), F.pad(new_mask, (length - new_mask.shape[1], 0))])
        return rows + joined, cache, mask

    def _step(self, rows: list[GenRequest], cache, mask):
        """One decode step: each row's last sampled token goes in, its next token comes out."""
        ids = torch.tensor([[r.tokens[-1]] for r in rows], device=mask.device)
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        out = self.served.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                cache_position=torch.tensor([mask.shape[1] - 1], device=mask.device), use_cache=True)
        self.stats["steps"] += 1
        self.stats["max_rows"] = max(self.stats["max_rows"], len(rows))
        self._accept(rows, self._sample(out.logits[:, -1], rows))
        return mask

    def _drop_finished(self, rows, cache, mask):
        """Rows that are done (or cancelled) leave the cache; columns no row attends to any more are cut."""
        for r in rows:
            if r.cancelled and not r.done:
                self.stats["cancelled"] += 1
                r._finish("cancelled")
        keep = [i for i, r in enumerate(rows) if not r.done]
        if len(keep) == len(rows):
            return rows, cache, mask
        if not keep:
            return [], None, None
        cache.batch_select_indices(torch.tensor(keep, device=mask.device))
        mask = mask[keep]
        first = int(mask.any(0).nonzero()[0])
        if first:
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            mask = mask[:, first:]
        return [rows[i] for i in keep], cache, mask

    # --- sampling and stopping -------------------------------------------------------------------------

    def _sample(self, logits: torch.Tensor, rows: list[GenRequest]) -> list[int]:
        """Greedy rows: argmax. Sampled rows: temperature, the model's top_k, then top_p, each row its own."""
        logits = logits.float()
        chosen = logits.argmax(-1)
        temps = torch.tensor([r.params.temperature for r in rows], device=logits.device)
        which = (temps > 0).nonzero().squeeze(1)
        if len(which):
            scores = logits[which] / temps[which, None]
            if 0 < self.top_k < scores.shape[-1]:
                kth = torch.topk(scores, self.top_k).values[:, -1:]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            top_p = torch.tensor([rows[i].params.top_p for i in which.tolist()], device=logits.device)
            ordered, order = torch.sort(scores, descending=False)
            drop = ordered.softmax(-1).cumsum(-1) <= (1 - top_p)[:, None]
            drop[:, -1] = False  # the most likely token always stays
            scores = scores.scatter(1, order, ordered.masked_fill(drop, float("-inf")))
            chosen[which] = torch.multinomial(scores.softmax(-1), 1).squeeze(1)
        return chosen.tolist()

    def _accept(self, rows: list[GenRequest], tokens: list[int]) -> None:
        tokenizer = self.served.tokenizer
        for request, token in zip(rows, tokens, strict=True):
            if token in self.eos:
                request._finish("stop")
                continue
            request.tokens.append(token)
            self.stats["tokens"] += 1
            text = tokenizer.decode(request.tokens, skip_special_tokens=True)
            cut, stopped = self.apply_stop(text, request.params.stop)
            request.text = cut
            if stopped:
                request._finish("stop")
            elif len(request.tokens) >= request.params.max_tokens:
                request._finish("length")
            elif request.stream:
                safe = len(text.rstrip("\ufffd"))  # an incomplete UTF-8 sequence waits for its next token
                request._emit(safe - _held_back(text[:safe], request.params.stop))


def _held_back(text: str, stop: tuple[str, ...]) -> int:
    """How many trailing characters could be the start of a stop string (not streamed until that is decided)."""
    longest = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest


def _left_pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """[batch, heads, T, dim] padded with zeros on the left of T to `length` (masked out: never attended)."""
    return F.pad(t, (0, 0, length - t.shape[-2], 0))
