"""Greedy decoding over one preallocated static KV cache: a compiled one-token step, no host sync per token, and up
to `rows` sequences decoded together (requests join and leave the running batch between steps).

Why not `model.generate`: on the H100, transformers' generate with a compiled static cache decoded the 7B model at
~8.7 ms per token against a ~4 ms memory-bandwidth floor. The difference is host work done between GPU steps:
each step builds its inputs in Python, runs the logits processors and stopping criteria, and the stopping check
reads a GPU value back, so the CPU can never queue the next step while the GPU runs this one. Here a step is one
compiled call (a CUDA graph replay under "reduce-overhead"/"max-autotune") plus an argmax, and the loop looks
for an end-of-sequence token only every `check_every` steps, so the GPU stays busy (the same recipe as gpt-fast).

Why batch: a decode step reads every weight once whatever the batch holds, so 8 sequences in one step cost far less
than 8 steps (measured in BENCHMARKS.md). Several requests of one replica therefore share the steps: each gets a row
of the cache, and all rows write the same cache slot per step (transformers' StaticCache keeps one write position).
A request joins at the current slot `s`: its prompt is prefilled alone (batch of one, its own positions 0..L-1) and
copied into its row just below `s`, at slots s-L..s-1. Its later tokens get positions L, L+1, ... and attend only to
its own slots (a per-row mask), so every row computes what it would alone: rotary embeddings depend on position
differences only, and the slots below its prompt are masked. With one sequence in flight (the common case at low
load), the step runs on row 0 alone, through a one-row view of the same cache, so a lone request does not pay for
reading seven idle rows' caches. The loop runs on a CUDA stream of its own, so other models of the process are not
queued behind its steps.

Semantics match greedy `generate` exactly: the first token comes from the prefill, end-of-sequence tokens are
masked until `min_new_tokens` are written, and the output stops after the first end-of-sequence token (which it
includes).

A sequence may carry a `TokenConstraint` (analyzers/_json_grammar.py: a JSON schema's grammar). Its row's logits are
then masked to the tokens the grammar allows before the argmax, exactly as transformers' generate() does with
xgrammar's logits processor; `min_new_tokens` does not apply to it (the grammar decides where it ends). The grammar
must see each token before it can say which may come next, so while a constrained sequence is in flight every step
reads its new tokens back: the one host sync per step that the loop otherwise avoids.

Only greedy decoding without extra logits processors is supported; `unsupported_reason` says when to fall back.
The model is only ever run on the decoder's own thread (CUDA graphs are recorded per thread); callers on any thread
`submit` and wait.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from analyzers._json_grammar import eos_token_ids, mask_logits, new_bitmask

log = logging.getLogger(__name__)

# generation_config fields that add a logits processor greedy `generate` would apply and this loop does not
_UNSUPPORTED_PROCESSORS = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
}
_STOP = object()  # queue sentinel: close()


@dataclass
class _Sequence:
    """One request in the decoder: its prompt, limits, and where it sits in the cache once admitted."""

    inputs: Mapping[str, torch.Tensor]
    max_new: int
    min_new: int
    ready: torch.cuda.Event | None = None  # the caller's copy of `inputs` to the device is done when this is
    constraint: object | None = None  # a TokenConstraint: the grammar its tokens must follow
    future: Future = field(default_factory=Future)
    row: int = -1
    first_slot: int = -1  # the slot whose input token is this sequence's first new token
    checked: int = 0  # new tokens known to hold no end-of-sequence token

    @property
    def prompt_tokens(self) -> int:
        return int(self.inputs["input_ids"].shape[1])


@dataclass
class _Call:
    """Any other work that must run on the model's thread (generate() fallbacks), between decode steps."""

    fn: Callable[[], object]
    ready: torch.cuda.Event | None = None
    future: Future = field(default_factory=Future)


class StaticGreedyDecoder:
    def __init__(self, model, max_cache_len: int, compile_mode: str | None = None, check_every: int = 8, rows: int = 1):
        from transformers import StaticCache

        if rows < 1:
            raise ValueError("rows must be at least 1")
        self.model = model
        self.max_cache_len = max_cache_len
        self.rows = rows
        self.check_every = max(1, check_every)
        device = model.device
        self.cache = StaticCache(config=model.config, max_cache_len=max_cache_len)
        self._row0 = StaticCache(config=model.config, max_cache_len=max_cache_len) if rows > 1 else self.cache
        self._eos = torch.tensor(sorted(set(eos_token_ids(model.generation_config))), dtype=torch.long, device=device)
        self._eos_host = self._eos.cpu()
        self._eos_columns: torch.Tensor | None = None  # (vocab,) bool, built from the first logits
        # transformers renamed `past_key_values` to `cache` in 5.2x (the GPU machine has 5.17, this one newer)
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._dtype = model.get_input_embeddings().weight.dtype
        # Per-row state on the device, so a step needs nothing from the host. Column s of _tokens is the input
        # token of slot s (and the output of the step at slot s-1).
        self._tokens = torch.zeros(rows, max_cache_len + 1, dtype=torch.long, device=device)
        self._starts = torch.full((rows,), max_cache_len, dtype=torch.long, device=device)  # first slot a row attends to
        self._eos_blocked_until = torch.zeros(rows, dtype=torch.long, device=device)  # min_new_tokens, as a slot
        self._slot = torch.zeros(1, dtype=torch.long, device=device)  # the slot the next step writes
        self._slot_ids = torch.arange(max_cache_len, device=device)
        # Grammar masks of constrained rows (analyzers/_json_grammar.py): filled on the host, one bit per token,
        # copied to the device each step; made on first use, once the logits' width is known.
        self._bitmask_host: torch.Tensor | None = None
        self._bitmask: torch.Tensor | None = None
        self._compiled = compile_mode is not None
        # how the rows were used, for benchmarks and tests: mean occupancy = row_steps / steps
        self.stats = {"steps": 0, "row_steps": 0, "fresh_batches": 0, "joined_running": 0, "constrained_steps": 0}

        def compile_step(cache):
            step = lambda tokens, starts, slot: self._next_logits(cache, tokens, starts, slot)  # noqa: E731
            return torch.compile(step, mode=compile_mode, fullgraph=True, dynamic=False) if self._compiled else step

        self._step_all = compile_step(self.cache)
        self._step_row0 = compile_step(self._row0) if rows > 1 else self._step_all
        # The loop's own CUDA stream: on the default stream, shared by every thread of the process, each kernel and
        # each sync of the other analyzers of the group (YOLO's, on their threads) queued behind the decode steps
        # already in flight. Made (and the tensors above finished) before the thread starts.
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        if self._stream is not None:
            torch.cuda.current_stream(device).synchronize()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="static-greedy-decoder", daemon=True)
        self._thread.start()

    # ---------- the caller's side ----------
    def unsupported_reason(self, prompt_tokens: int, max_new_tokens: int) -> str | None:
        """Why this request must go through `generate` instead, or None when the loop can serve it."""
        if prompt_tokens + max_new_tokens > self.max_cache_len:
            return f"{prompt_tokens} prompt + {max_new_tokens} new tokens exceed the static cache ({self.max_cache_len})"
        config = self.model.generation_config
        for name, neutral in _UNSUPPORTED_PROCESSORS.items():
            if getattr(config, name, neutral) not in (neutral, None, [], 0):
                return f"the model's generation_config sets {name}, which this loop does not apply"
        return None

    def submit(self, inputs: Mapping[str, torch.Tensor], max_new_tokens: int, min_new_tokens: int = 0,
               constraint=None) -> Future:
        """Queue one prompt (a batch of one, already on the model's device); the future holds its new token ids
        (1-D, on the CPU), ending with the first end-of-sequence token if one came. `constraint` (a fresh
        TokenConstraint) limits every token to what its grammar allows."""
        return self.submit_together([inputs], max_new_tokens, min_new_tokens, [constraint])[0]

    def submit_together(self, prompts: list[Mapping[str, torch.Tensor]], max_new_tokens: int,
                        min_new_tokens: int = 0, constraints: list | None = None) -> list[Future]:
        """Queue prompts that the decoder sees at the same moment, so they start in one batch when rows are free
        (warm-up uses it to record the all-rows step; a benchmark, to measure a full batch)."""
        sequences = []
        constraints = constraints or [None] * len(prompts)
        for inputs, constraint in zip(prompts, constraints, strict=True):
            if int(inputs["input_ids"].shape[0]) != 1:
                raise ValueError("submit one sequence per prompt; the decoder batches them")
            reason = self.unsupported_reason(int(inputs["input_ids"].shape[1]), max_new_tokens)
            if reason:
                raise ValueError(reason)
            prompt = {k: v for k, v in inputs.items() if k != "attention_mask"}  # one sequence: no padding to mask
            min_new = 0 if constraint is not None else min(min_new_tokens, max_new_tokens)
            sequences.append(_Sequence(prompt, max(1, max_new_tokens), min_new, self._caller_done(), constraint))
        if not self._thread.is_alive():
            raise RuntimeError("the decoder was closed")
        self._queue.put(sequences)
        return [seq.future for seq in sequences]

    def generate(self, inputs: Mapping[str, torch.Tensor], max_new_tokens: int, min_new_tokens: int = 0,
                 constraint=None) -> torch.Tensor:
        return self.submit(inputs, max_new_tokens, min_new_tokens, constraint).result()

    def call(self, fn: Callable[[], object]):
        """Run `fn()` on the model's thread between decode steps and return its result (e.g. a generate() fallback,
        which must not run concurrently with the compiled steps)."""
        work = _Call(fn, self._caller_done())
        self._queue.put(work)
        return work.future.result()

    def _caller_done(self) -> torch.cuda.Event | None:
        """An event after the work the calling thread queued so far (its inputs' copy to the device), which the
        loop's stream waits for before it reads them."""
        if self._stream is None:
            return None
        event = torch.cuda.Event()
        event.record()
        return event

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=60)

    # ---------- the model's thread ----------
    def _next_logits(self, cache, tokens: torch.Tensor, starts: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """One step for every row of `cache` (static shapes: one CUDA graph). Row r attends to its slots
        starts[r]..slot and its token has position slot - starts[r]; an idle row (start past the end) attends to
        the slot it writes and nothing else, so no row's softmax is empty."""
        visible = (self._slot_ids >= starts[:, None]) & (self._slot_ids <= slot)
        visible = visible | (self._slot_ids == slot)
        mask = torch.zeros(visible.shape, dtype=self._dtype, device=visible.device)
        mask = mask.masked_fill(~visible, torch.finfo(self._dtype).min)[:, None, None, :]
        positions = (slot - starts).clamp(min=0)[:, None]
        return self.model(input_ids=tokens, position_ids=positions, attention_mask=mask, use_cache=True,
                          **{self._cache_kwarg: cache}).logits[:, -1, :]

    def _serve(self) -> None:
        on_stream = torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()
        with torch.inference_mode(), on_stream:  # the cache's tensors are made here, so only touched here
            self._loop()

    def _loop(self) -> None:
        waiting: list[_Sequence] = []
        active: dict[int, _Sequence] = {}
        slot = 0
        steps_since_check = 0
        while True:
            # Take new work; block only when there is nothing to decode.
            try:
                while True:
                    item = self._queue.get(block=not (active or waiting))
                    if item is _STOP:
                        self._fail([*waiting, *active.values()], RuntimeError("the decoder was closed"))
                        return
                    if isinstance(item, _Call):
                        self._run_call(item)
                    else:
                        waiting.extend(item)
            except queue.Empty:
                pass
            try:
                slot = self._admit(waiting, active, slot)
                if not active:
                    if not waiting and self.model.device.type == "cuda":
                        torch.cuda.empty_cache()  # idle: give activation memory back to the card's other groups
                    continue
                grammar_done = self._step(active, slot)
                slot += 1
                steps_since_check += 1
                due = grammar_done or any(self._length(seq, slot) >= seq.max_new for seq in active.values())
                if due or steps_since_check >= self.check_every:
                    self._retire(active, slot)
                    steps_since_check = 0
            except Exception as exc:  # a failed step fails every sequence in flight, not the thread
                log.exception("static greedy decoder step failed")
                self._fail(list(active.values()), exc)
                active.clear()

    def _run_call(self, work: _Call) -> None:
        try:
            if work.ready is not None:
                torch.cuda.current_stream().wait_event(work.ready)
            work.future.set_result(work.fn())
        except Exception as exc:
            work.future.set_exception(exc)

    def _admit(self, waiting: list[_Sequence], active: dict[int, _Sequence], slot: int) -> int:
        """Give waiting sequences free rows, in arrival order, and return the slot the next step writes. A sequence
        joins a running batch only when its prompt fits below the current slot and its new tokens above it;
        otherwise it (and everyone after it, so it cannot be overtaken for ever) waits until the batch drains."""
        if not waiting:
            return slot
        fresh = not active
        if fresh:  # every row is free: start at the slot that fits the longest prompt of those admitted together
            slot = 0
            joining = []
            for seq in waiting[: self.rows]:
                top = max(slot, seq.prompt_tokens)
                if any(top + s.max_new > self.max_cache_len for s in [*joining, seq]):
                    break
                slot = top
                joining.append(seq)
        else:
            joining = []
            for seq in waiting:
                if len(active) + len(joining) >= self.rows or seq.prompt_tokens > slot \
                        or slot + seq.max_new > self.max_cache_len:
                    break
                joining.append(seq)
        free = (r for r in range(self.rows) if r not in active)
        for seq in joining:
            waiting.remove(seq)
            seq.row = next(free)
            try:
                self._prefill(seq, slot)
            except Exception as exc:  # this prompt failed (e.g. out of memory); the others go on
                log.exception("static greedy decoder prefill failed")
                self._reset_row(seq.row)
                seq.future.set_exception(exc)
                continue
            active[seq.row] = seq
        if fresh:
            self._set_cache_slot(slot)  # after the first prefill, which allocates the cache
        if fresh:
            self.stats["fresh_batches"] += bool(joining)
        else:
            self.stats["joined_running"] += len(joining)
        if any(seq.max_new == 1 for seq in active.values()):
            self._retire(active, slot)
        return slot

    def _prefill(self, seq: _Sequence, slot: int) -> None:
        """The prompt alone (its positions 0..L-1), then its keys and values into its row just below `slot`."""
        from transformers import DynamicCache

        if seq.ready is not None:
            torch.cuda.current_stream().wait_event(seq.ready)
        scratch = DynamicCache(config=self.model.config)
        logits = self.model(**seq.inputs, **{self._cache_kwarg: scratch}, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        length, row = seq.prompt_tokens, seq.row
        self._ensure_cache(scratch)
        for layer, prompt in zip(self.cache.layers, scratch.layers):
            layer.keys[row, :, slot - length : slot].copy_(prompt.keys[0, :, :length])
            layer.values[row, :, slot - length : slot].copy_(prompt.values[0, :, :length])
        if seq.min_new > 0 and self._eos.numel():
            logits = logits.index_fill(-1, self._eos, float("-inf"))
        if seq.constraint is not None:
            logits = self._apply_grammar(logits, {0: seq})
        self._tokens[row, slot] = logits.argmax(-1)[0]
        if seq.constraint is not None:
            seq.constraint.accept(int(self._tokens[row, slot]))
        self._starts[row] = slot - length
        self._eos_blocked_until[row] = slot + seq.min_new  # an end token is allowed from the min_new-th new token on
        seq.first_slot = slot

    def _ensure_cache(self, prompt_cache) -> None:
        """Allocate the static cache on first use, shaped like the model's own keys and values (and the one-row
        view of it that a lone sequence decodes through)."""
        if self.cache.layers[0].is_initialized:
            return
        for layer, prompt in zip(self.cache.layers, prompt_cache.layers):
            layer.lazy_initialization(prompt.keys.expand(self.rows, -1, -1, -1), prompt.values.expand(self.rows, -1, -1, -1))
        if self._row0 is self.cache:
            return
        for view, layer in zip(self._row0.layers, self.cache.layers):
            vars(view).update(vars(layer))  # same device, heads, write position (the one counter tensor) ...
            view.keys, view.values, view.batch_size = layer.keys[:1], layer.values[:1], 1  # ... and row 0's memory
            for tensor in (view.keys, view.values):
                torch._dynamo.mark_static_address(tensor)

    def _set_cache_slot(self, slot: int) -> None:
        self._slot.fill_(slot)
        for layer in self.cache.layers:
            if layer.is_initialized:
                layer.cumulative_length.fill_(slot)

    def _step(self, active: dict[int, _Sequence], slot: int) -> bool:
        """One decode step for every active row; True when a constrained sequence's grammar has just finished."""
        lone = len(active) == 1 and 0 in active
        rows = 1 if lone else self.rows
        if self._compiled:  # the previous replay's output was consumed (copied into _tokens)
            torch.compiler.cudagraph_mark_step_begin()
        step = self._step_row0 if lone else self._step_all
        logits = step(self._tokens[:rows, slot : slot + 1], self._starts[:rows], self._slot)
        if self._eos.numel() and any(seq.min_new > 0 for seq in active.values()):
            if self._eos_columns is None:
                self._eos_columns = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
                self._eos_columns[self._eos] = True
            blocked = self._slot + 1 < self._eos_blocked_until[:rows]  # the token written now is new token slot+1-first
            logits = logits.masked_fill(blocked[:, None] & self._eos_columns, float("-inf"))
        constrained = {row: seq for row, seq in active.items() if seq.constraint is not None}
        if constrained:
            logits = self._apply_grammar(logits, constrained)
        self._tokens[:rows, slot + 1] = logits.argmax(-1)
        self._slot += 1
        self.stats["steps"] += 1
        self.stats["row_steps"] += len(active)
        if not constrained:
            return False
        self.stats["constrained_steps"] += 1
        written = self._tokens[:rows, slot + 1].cpu()  # the grammar must see this token before the next mask
        for row, seq in constrained.items():
            seq.constraint.accept(int(written[row]))
        return any(seq.constraint.finished for seq in constrained.values())

    def _apply_grammar(self, logits: torch.Tensor, constrained: Mapping[int, _Sequence]) -> torch.Tensor:
        """`logits` (one row per cache row in use) with each constrained row limited to its grammar's next tokens;
        other rows keep every token."""
        rows, vocab = logits.shape
        if self._bitmask_host is None:
            self._bitmask_host = new_bitmask(self.rows, vocab, pin_memory=logits.device.type == "cuda")
            self._bitmask = torch.empty_like(self._bitmask_host, device=logits.device)
        host = self._bitmask_host[:rows]
        host.fill_(-1)
        for row, seq in constrained.items():
            seq.constraint.fill_mask(host, row)
        # The host buffer is rewritten only after the next read-back, which waits for this copy on the same stream.
        mask = self._bitmask[:rows]
        mask.copy_(host, non_blocking=True)
        return mask_logits(logits, mask)

    @staticmethod
    def _length(seq: _Sequence, slot: int) -> int:
        """New tokens written so far for `seq`, when the next step writes `slot`."""
        return slot - seq.first_slot + 1

    def _retire(self, active: dict[int, _Sequence], slot: int) -> None:
        """Finish the sequences that wrote an end token or reached max_new (the only read-back from the device)."""
        if not active:
            return
        low = min(seq.first_slot + seq.checked for seq in active.values())
        unchecked = self._tokens[:, low : slot + 1].cpu()  # one small copy for all rows
        for row, seq in list(active.items()):
            length = min(self._length(seq, slot), seq.max_new)
            offset = seq.first_slot + seq.checked - low
            end = self._first_eos(unchecked[row, offset : offset + length - seq.checked])
            if end is None and length < seq.max_new:
                seq.checked = length
                continue
            length = length if end is None else seq.checked + end + 1
            # a copy: on a CPU device .cpu() is a view, and the row is reused at once
            seq.future.set_result(self._tokens[row, seq.first_slot : seq.first_slot + length].to("cpu", copy=True))
            del active[row]
            self._reset_row(row)

    def _first_eos(self, tokens: torch.Tensor) -> int | None:
        if not self._eos.numel():
            return None
        hits = torch.isin(tokens, self._eos_host).nonzero()
        return int(hits[0, 0]) if hits.numel() else None

    def _reset_row(self, row: int) -> None:
        self._starts[row] = self.max_cache_len  # idle: attends to nothing of anyone's
        self._eos_blocked_until[row] = 0

    @staticmethod
    def _fail(sequences, exc: BaseException) -> None:
        for seq in sequences:
            if not seq.future.done():
                seq.future.set_exception(exc)
