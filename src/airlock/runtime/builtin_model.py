"""The built-in language model: a word-level n-gram model that Airlock ships, so the
embedded default serves real generated text with nothing else installed.

``train(corpus)`` counts the corpus's n-grams with vectorised numpy and smooths them
with interpolated Kneser–Ney: one discount per order, Ney's estimate n1 / (n1 + 2 n2)
capped at 0.3. In the small corpora this model is made for nearly every n-gram is a
singleton, and the uncapped estimate (~0.8) would hand most of the probability mass to
the unigram and make the text incoherent. Paragraphs (blank-line separated) are
documents: each starts with ``order - 1`` ``<s>`` tokens and ends with ``</s>``, which
the model samples to end an answer. In a prompt too, a blank line starts a new
document: ``"How do I reset it?\n\n"`` is answered by a fresh paragraph.

Generation mixes one dense unigram vector with the sparse rows of the contexts found
for the last ``order - 1`` tokens, then samples with a seeded ``numpy`` Generator
(temperature 0 is greedy; top_p keeps the smallest nucleus). Two additions make a tiny
model answer rather than ramble:

- the whole prompt sets the topic, by minimum-discrimination-information adaptation
  (Kneser et al. 1997): the training paragraphs are ranked against the prompt by
  tf-idf, their weighted unigram is mixed 1:1 with the background unigram ``p_bg``,
  and each probability is multiplied by ``(p_mixed / p_bg) ** topic_strength``;
- like ``no_repeat_ngram_size`` in transformers, a completion never repeats one of
  its own n-grams of ``no_repeat_ngram`` tokens (order + 1), which stops the loops
  n-gram models fall into.

A release folder holds three files; ``to_files()`` / ``load_from_bytes()`` are the
byte-level twins of ``save()`` / ``load()``, so the runtime layer can hand over bytes
the blob store has already verified. Training is deterministic: equal corpora give
byte-identical files.

``model.safetensors``  ``unigram`` (continuation counts, [V]); per order k >= 2 CSR rows
                       ``{k}gram.context`` [rows, k-1], ``{k}gram.indptr`` [rows+1],
                       ``{k}gram.next``, ``{k}gram.count`` [entries]; ``discount``
                       [order]; paragraph bags of words ``docs.indptr`` [D+1],
                       ``docs.token``, ``docs.count`` [entries]
``tokenizer.json``     the vocabulary (a token's id is its position)
``config.json``        runtime, architecture, order, vocab_size, topic_strength (0 turns
                       the topic off), no_repeat_ngram (0 allows repeats), lineage
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from airlock.core.digest import digest_bytes
from airlock.errors import InvalidInput, NotFound

ARCHITECTURE = "airlock-ngram"
TOKENIZER_TYPE = "airlock-words-v1"
FILES = ("model.safetensors", "tokenizer.json", "config.json")
MAX_ORDER = 8
SPECIALS = ("<unk>", "<s>", "</s>")
_UNK, _BOS, _EOS = 0, 1, 2
_MIN_DISCOUNT, _MAX_DISCOUNT = 0.1, 0.3
_TOPIC_STRENGTH = 1.5
_TOPIC_DOCS = 32  # the prompt's topic is drawn from at most this many best-matching documents
_SHORTLIST = 512  # top-p looks at this many best tokens before sorting them all
_HINT = "train one with `airlock model train --corpus FILE --out DIR`"

_TOKEN_RE = re.compile(r"\n|(?:[^\W\d_]\.){2,}|\d+(?:[.,:]\d+)*|[^\W_]+(?:['’-][^\W_]+)*|[^\w\s]|_")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n")
_GLUE_LEFT = frozenset([".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "'", "’", "…", "/"])
_GLUE_RIGHT = frozenset(["(", "[", "{", "$", "#", "/", "\n"])

FinishReason = Literal["stop", "length"]
_Ints = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]


def tokenize(text: str) -> list[str]:
    """Words (with inner apostrophes/hyphens), numbers, single punctuation marks, newlines."""
    return _TOKEN_RE.findall(text)


@dataclass(frozen=True, slots=True)
class Generation:
    """One completion: its text, token counts and why it ended."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


class _Spacer:
    """Joins tokens back into text with sensible spacing, one piece at a time."""

    __slots__ = ("_in_quote", "_prev")

    def __init__(self, before: str = "") -> None:
        tokens = tokenize(before)
        ends_clean = not before or before[-1].isspace()
        self._prev: str | None = None if ends_clean or not tokens else tokens[-1]
        self._in_quote = before.count('"') % 2 == 1

    def piece(self, token: str) -> str:
        prev, self._prev = self._prev, token
        opens_quote = False
        if token == '"':
            opens_quote = not self._in_quote
            self._in_quote = opens_quote
        glued = (
            prev is None
            or token == "\n"
            or prev in _GLUE_RIGHT
            or (token in _GLUE_LEFT or (token == '"' and not opens_quote))
            or (prev == '"' and self._in_quote and token != '"')
        )
        return token if glued else " " + token


@dataclass(frozen=True, slots=True)
class _Level:
    """One order k >= 2: context (last k-1 ids) -> (start, end, gamma) over the entry arrays."""

    rows: dict[tuple[int, ...], tuple[int, int, float]]
    next_ids: _Ints
    probs: _Floats  # discounted probability of each entry given its context


@dataclass(frozen=True, slots=True)
class _Topics:
    """Training documents as bags of words, with postings to rank them against a prompt."""

    indptr: _Ints  # each document's run of entries
    entry_doc: _Ints  # document of each (document, token) entry
    entry_token: _Ints
    entry_count: _Floats
    entry_share: _Floats  # count / document length
    postings: _Ints  # entries sorted by token, and where each token's run starts
    starts: _Ints
    idf: _Floats
    background: _Floats
    strength: float

    def bias(self, prompt_ids: Sequence[int]) -> _Floats | None:
        """Per-token multipliers that lean generation towards the prompt's documents."""
        terms = [t for t in set(prompt_ids) if self.idf[t] > 0]
        if not terms or self.strength == 0:
            return None
        scores = np.zeros(len(self.indptr) - 1)
        for t in terms:  # tf-idf with a saturating term frequency
            hits = self.postings[self.starts[t] : self.starts[t + 1]]
            tf = self.entry_count[hits]
            scores[self.entry_doc[hits]] += self.idf[t] * tf / (tf + 1)
        best = np.flatnonzero(scores)
        if len(best) > _TOPIC_DOCS:
            best = best[np.argpartition(scores[best], -_TOPIC_DOCS)[-_TOPIC_DOCS:]]
        weights = scores[best] ** 2 / np.sum(scores[best] ** 2)  # squared: best matches dominate
        topic = np.zeros_like(self.background)
        for doc, weight in zip(best.tolist(), weights.tolist(), strict=True):
            run = slice(self.indptr[doc], self.indptr[doc + 1])
            topic[self.entry_token[run]] += weight * self.entry_share[run]
        ratio = np.ones_like(self.background)
        seen = self.background > 0
        ratio[seen] = 0.5 * topic[seen] / self.background[seen] + 0.5
        return ratio**self.strength


class BuiltinModel:
    """A trained n-gram model: immutable after construction, safe to share across threads."""

    def __init__(
        self,
        vocab: Sequence[str],
        tensors: Mapping[str, npt.NDArray[Any]],
        config: Mapping[str, Any],
    ) -> None:
        self.vocab: tuple[str, ...] = tuple(vocab)
        self.order: int = int(config["order"])
        self._config = copy.deepcopy(dict(config))
        self._tensors = dict(tensors)
        self._index = {token: i for i, token in enumerate(self.vocab)}
        self._unigram, self._levels = _build_tables(self._tensors, len(self.vocab), self.order)
        no_repeat = self._config.get("no_repeat_ngram", 0)
        strength = self._config.get("topic_strength", 0.0)
        if not isinstance(no_repeat, int) or not 0 <= no_repeat <= 16:
            raise InvalidInput(f"config.json: no_repeat_ngram must be 0..16, got {no_repeat!r}")
        if not isinstance(strength, int | float) or not 0 <= strength <= 10:
            raise InvalidInput(f"config.json: topic_strength must be 0..10, got {strength!r}")
        self._no_repeat = no_repeat
        self._topics = _build_topics(self._tensors, len(self.vocab), float(strength))

    @property
    def config(self) -> dict[str, Any]:
        """A copy of config.json: runtime, architecture, order, vocab_size, training lineage."""
        return copy.deepcopy(self._config)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def entry_count(self) -> int:
        """Stored parameters: unigram entries plus every n-gram entry."""
        return self.vocab_size + sum(len(level.next_ids) for level in self._levels)

    # -- files -------------------------------------------------------------------------

    def to_files(self) -> dict[str, bytes]:
        """The release folder as bytes: ``{file name: content}``."""
        tokenizer = {"type": TOKENIZER_TYPE, "specials": list(SPECIALS), "vocab": list(self.vocab)}
        return {
            "model.safetensors": save_tensors(self._tensors, metadata={"format": "np"}),
            "tokenizer.json": _json_bytes(tokenizer),
            "config.json": _json_bytes(self._config),
        }

    def save(self, folder: Path) -> list[Path]:
        """Write the three files into ``folder`` (each via a temporary file and a rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in self.to_files().items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, folder / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            written.append(folder / name)
        return written

    @classmethod
    def load(cls, folder: Path) -> BuiltinModel:
        files: dict[str, bytes] = {}
        for name in FILES:
            try:
                files[name] = (folder / name).read_bytes()
            except FileNotFoundError as exc:
                raise NotFound(f"{folder / name} does not exist", hint=_HINT) from exc
        return cls.load_from_bytes(files)

    @classmethod
    def load_from_bytes(cls, files: Mapping[str, bytes]) -> BuiltinModel:
        """Build a model from the (already verified) bytes of its release files."""
        missing = [name for name in FILES if name not in files]
        if missing:
            raise InvalidInput(f"builtin model is missing {', '.join(missing)}", hint=_HINT)
        config = _json_object(files["config.json"], "config.json")
        if config.get("architecture") != ARCHITECTURE:
            raise InvalidInput(
                f"config.json: architecture {config.get('architecture')!r} is not {ARCHITECTURE!r}",
                hint="this release needs another runtime",
            )
        tokenizer = _json_object(files["tokenizer.json"], "tokenizer.json")
        vocab = tokenizer.get("vocab")
        if tokenizer.get("type") != TOKENIZER_TYPE or not isinstance(vocab, list):
            raise InvalidInput(f"tokenizer.json: not an {TOKENIZER_TYPE} vocabulary", hint=_HINT)
        if (
            tuple(vocab[:3]) != SPECIALS
            or not all(isinstance(t, str) for t in vocab)
            or len(set(vocab)) != len(vocab)
        ):
            raise InvalidInput(
                "tokenizer.json: vocab must be distinct strings starting with <unk> <s> </s>"
            )
        order = config.get("order")
        if not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
            raise InvalidInput(f"config.json: order must be 1..{MAX_ORDER}, got {order!r}")
        if config.get("vocab_size") != len(vocab):
            raise InvalidInput("config.json: vocab_size does not match tokenizer.json")
        try:
            tensors = load_tensors(files["model.safetensors"])
        except SafetensorError as exc:
            raise InvalidInput(f"model.safetensors: {exc}", hint=_HINT) from exc
        return cls(vocab, tensors, config)

    # -- generation --------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; unknown words try lower case, then <unk>."""
        index = self._index
        return [index.get(t, index.get(t.lower(), _UNK)) for t in tokenize(text)]

    def topic_bias(self, prompt_ids: Sequence[int]) -> _Floats | None:
        """Multipliers that lean the next-token probabilities towards the prompt's topic."""
        return self._topics.bias(prompt_ids)

    def next_token_probs(self, context: Sequence[int], bias: _Floats | None = None) -> _Floats:
        """P(next | last order-1 ids of ``context``) over the vocabulary (sums to 1).

        A context shorter than order-1 ids is taken as the start of a document;
        ``bias`` (from ``topic_bias``) reweights the distribution.
        """
        ctx = tuple(context[len(context) - (self.order - 1) :]) if self.order > 1 else ()
        ctx = (_BOS,) * (self.order - 1 - len(ctx)) + ctx
        found: list[tuple[_Level, int, int, float]] = []
        scale = 1.0
        for k in range(self.order, 1, -1):  # highest order first: its weight is 1
            level = self._levels[k - 2]
            row = level.rows.get(ctx[len(ctx) - (k - 1) :])
            if row is None:
                continue
            start, end, gamma = row
            found.append((level, start, end, scale))
            scale *= gamma
        probs = self._unigram * scale
        for level, start, end, weight in found:
            probs[level.next_ids[start:end]] += weight * level.probs[start:end]
        if bias is not None:
            probs *= bias
            probs /= probs.sum()
        return probs

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
    ) -> Generation:
        """Continue ``prompt``; same seed and parameters give the same text."""
        pieces = self.stream(
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
        )
        try:
            while True:
                next(pieces)
        except StopIteration as done:
            result: Generation = done.value
            return result

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
    ) -> Generator[str, None, Generation]:
        """Yield text pieces as they are sampled; the generator returns the ``Generation``.

        Text that could be the start of a stop sequence is held back until it is not.
        """
        _check_params(max_tokens, temperature, top_p)
        stops = tuple(s for s in ([stop] if isinstance(stop, str) else stop or ()) if s)
        prompt_ids = self.encode(prompt)
        paragraph = _PARAGRAPH_RE.split(prompt)[-1]  # a blank line starts a new document
        context = [_BOS] * (self.order - 1) + self.encode(paragraph)
        bias = self.topic_bias(prompt_ids)
        rng = np.random.default_rng(seed)
        spacer = _Spacer(prompt)
        text, emitted, count = "", 0, 0
        finish: FinishReason = "length"
        n = self._no_repeat
        produced: dict[tuple[int, ...], list[int]] = {}  # (n-1)-gram -> tokens that followed
        while count < max_tokens:
            probs = self.next_token_probs(context, bias)
            repeats = produced.get(tuple(context[len(context) - n + 1 :])) if n else None
            if repeats and probs.sum() > probs[repeats].sum():
                probs[repeats] = 0.0
            token = _sample(probs, rng, temperature, top_p)
            if token == _EOS:
                finish = "stop"
                break
            count += 1
            if n and count >= n:
                produced.setdefault(tuple(context[len(context) - n + 1 :]), []).append(token)
            context.append(token)
            text += spacer.piece(self.vocab[token])
            safe = len(text)
            if stops:
                cut = min((i for s in stops if (i := text.find(s, emitted)) >= 0), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
                    break
                safe -= _pending_stop(text, stops)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        if len(text) > emitted:
            yield text[emitted:]
        return Generation(text, len(prompt_ids), count, finish)


def train(corpus_text: str, *, order: int = 3, seed: int = 0) -> BuiltinModel:
    """Count and smooth the n-grams of ``corpus_text`` (paragraphs are documents).

    Counting is deterministic; ``seed`` is recorded in config.json for lineage.
    """
    if not 1 <= order <= MAX_ORDER:
        raise InvalidInput(f"order must be between 1 and {MAX_ORDER}, got {order}")
    docs = []
    for paragraph in _PARAGRAPH_RE.split(corpus_text):
        tokens = tokenize(paragraph.strip())
        if tokens:
            docs.append(tokens)
    if not docs:
        raise InvalidInput("the corpus has no words", hint="give a UTF-8 text file with prose")
    counts = Counter(t for doc in docs for t in doc)
    vocab = SPECIALS + tuple(sorted(counts, key=lambda t: (-counts[t], t)))
    index = {t: i for i, t in enumerate(vocab)}
    pad = [_BOS] * (order - 1)
    ids = np.array(
        [i for doc in docs for i in (*pad, *(index[t] for t in doc), _EOS)],
        dtype=np.int64,
    )
    targets = np.flatnonzero(ids != _BOS)
    grams = np.lib.stride_tricks.sliding_window_view(ids, order)[targets - (order - 1)]
    tensors: dict[str, npt.NDArray[Any]] = {}
    discounts = np.zeros(order, dtype=np.float64)
    unique, gram_counts = np.unique(grams, axis=0, return_counts=True)
    for k in range(order, 1, -1):
        if k < order:  # Kneser–Ney: lower orders count distinct left extensions
            unique, gram_counts = np.unique(unique[:, 1:], axis=0, return_counts=True)
        tensors.update(_csr(unique, gram_counts, k))
        n1, n2 = int(np.sum(gram_counts == 1)), int(np.sum(gram_counts == 2))
        estimate = n1 / (n1 + 2 * n2) if n1 and n2 else _MAX_DISCOUNT
        discounts[k - 1] = min(max(estimate, _MIN_DISCOUNT), _MAX_DISCOUNT)
    last = unique[:, -1] if order > 1 else grams[:, 0]
    tensors["unigram"] = np.bincount(last, minlength=len(vocab)).astype(np.int64)
    tensors["discount"] = discounts
    tensors.update(_doc_terms([[index[t] for t in doc] for doc in docs], len(vocab)))
    config = {
        "runtime": "builtin",
        "architecture": ARCHITECTURE,
        "format_version": 1,
        "order": order,
        "vocab_size": len(vocab),
        "smoothing": "interpolated-kneser-ney",
        "topic_strength": _TOPIC_STRENGTH,
        "no_repeat_ngram": order + 1,
        "training": {
            "corpus_digest": digest_bytes(corpus_text.encode("utf-8")),
            "corpus_tokens": len(targets),
            "documents": len(docs),
            "seed": seed,
        },
    }
    return BuiltinModel(vocab, tensors, config)


def _csr(grams: _Ints, counts: _Ints, k: int) -> dict[str, npt.NDArray[Any]]:
    """Sorted unique k-grams -> rows by context (first k-1 ids), entries by next id."""
    contexts = grams[:, :-1]
    starts = np.flatnonzero(np.r_[True, np.any(contexts[1:] != contexts[:-1], axis=1)])
    return {
        f"{k}gram.context": np.ascontiguousarray(contexts[starts], dtype=np.int32),
        f"{k}gram.indptr": np.r_[starts, len(grams)].astype(np.int64),
        f"{k}gram.next": np.ascontiguousarray(grams[:, -1], dtype=np.int32),
        f"{k}gram.count": counts.astype(np.int64),
    }


def _doc_terms(docs: list[list[int]], vocab_size: int) -> dict[str, npt.NDArray[Any]]:
    """Documents x tokens counts, as CSR rows (one row per document)."""
    doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), [len(d) for d in docs])
    keys, counts = np.unique(doc_of * vocab_size + np.concatenate(docs), return_counts=True)
    rows = keys // vocab_size
    return {
        "docs.indptr": np.searchsorted(rows, np.arange(len(docs) + 1)).astype(np.int64),
        "docs.token": (keys % vocab_size).astype(np.int32),
        "docs.count": counts.astype(np.int64),
    }


def _build_topics(
    tensors: Mapping[str, npt.NDArray[Any]], vocab_size: int, strength: float
) -> _Topics:
    indptr, tokens, counts = (tensors.get(f"docs.{n}") for n in ("indptr", "token", "count"))
    if (
        indptr is None
        or tokens is None
        or counts is None
        or indptr.ndim != 1
        or len(indptr) < 2
        or indptr[0] != 0
        or indptr[-1] != len(tokens)
        or len(tokens) != len(counts)
        or np.any(np.diff(indptr) < 1)
        or np.any((tokens < 0) | (tokens >= vocab_size))
        or np.any(counts < 1)
    ):
        raise InvalidInput("model.safetensors: the document tables are inconsistent", hint=_HINT)
    docs = len(indptr) - 1
    entry_doc = np.repeat(np.arange(docs, dtype=np.int64), np.diff(indptr))
    counts = counts.astype(np.float64)
    lengths = np.add.reduceat(counts, indptr[:-1].astype(np.int64))
    tokens = tokens.astype(np.int64)
    df = np.bincount(tokens, minlength=vocab_size)
    background = np.bincount(tokens, weights=counts, minlength=vocab_size) / counts.sum()
    return _Topics(
        indptr=indptr.astype(np.int64),
        entry_doc=entry_doc,
        entry_token=tokens,
        entry_count=counts,
        entry_share=counts / lengths[entry_doc],
        postings=np.argsort(tokens, kind="stable"),
        starts=np.r_[0, np.cumsum(df)].astype(np.int64),
        idf=np.log(docs / np.maximum(df, 1)) * (df > 0),
        background=background,
        strength=strength,
    )


def _build_tables(
    tensors: Mapping[str, npt.NDArray[Any]], vocab_size: int, order: int
) -> tuple[_Floats, list[_Level]]:
    """Check the stored arrays and precompute probabilities and context lookups."""

    def tensor(name: str, ndim: int) -> npt.NDArray[Any]:
        array = tensors.get(name)
        if array is None or array.ndim != ndim:
            raise InvalidInput(
                f"model.safetensors: tensor {name!r} missing or misshapen", hint=_HINT
            )
        return array

    unigram = tensor("unigram", 1).astype(np.float64)
    discount = tensor("discount", 1).astype(np.float64)
    if unigram.shape != (vocab_size,) or unigram.min() < 0 or unigram.sum() <= 0:
        raise InvalidInput("model.safetensors: unigram does not match the vocabulary", hint=_HINT)
    if discount.shape != (order,) or not np.all((discount >= 0) & (discount < 1)):
        raise InvalidInput("model.safetensors: discount must hold one value in [0, 1) per order")
    levels = []
    for k in range(2, order + 1):
        contexts = tensor(f"{k}gram.context", 2).astype(np.int64)
        indptr = tensor(f"{k}gram.indptr", 1).astype(np.int64)
        next_ids = tensor(f"{k}gram.next", 1).astype(np.int64)
        counts = tensor(f"{k}gram.count", 1).astype(np.float64)
        rows = len(contexts)
        if (
            contexts.shape[1] != k - 1
            or indptr.shape != (rows + 1,)
            or indptr[0] != 0
            or indptr[-1] != len(next_ids)
            or len(counts) != len(next_ids)
            or np.any(np.diff(indptr) < 1)
            or np.any(counts < 1)
            or np.any((next_ids < 0) | (next_ids >= vocab_size))
            or np.any((contexts < 0) | (contexts >= vocab_size))
        ):
            raise InvalidInput(f"model.safetensors: the {k}-gram tables are inconsistent")
        sizes = np.diff(indptr)
        totals = np.add.reduceat(counts, indptr[:-1]) if rows else counts[:0]
        gammas = discount[k - 1] * sizes / totals
        probs = (counts - discount[k - 1]) / np.repeat(totals, sizes)
        keys = map(tuple, contexts.tolist())
        spans = zip(indptr[:-1].tolist(), indptr[1:].tolist(), gammas.tolist(), strict=True)
        levels.append(_Level(dict(zip(keys, spans, strict=True)), next_ids, probs))
    return unigram / unigram.sum(), levels


def _sample(probs: _Floats, rng: np.random.Generator, temperature: float, top_p: float) -> int:
    if temperature == 0:
        return int(np.argmax(probs))
    if temperature != 1:
        probs = (probs / probs.max()) ** (1.0 / temperature)
    ids = _nucleus(probs, top_p) if top_p < 1 else None
    if ids is not None:
        probs = probs[ids]
    cumulative = np.cumsum(probs)
    pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    pick = min(pick, len(probs) - 1)
    return pick if ids is None else int(ids[pick])


def _nucleus(probs: _Floats, top_p: float) -> _Ints:
    """Ids of the fewest most likely tokens that hold ``top_p`` of the mass, best first.

    Large vocabularies look at a shortlist first (a partition, not a sort of everything).
    """
    target = top_p * probs.sum()
    ranked: _Ints | None = None
    if len(probs) > _SHORTLIST:
        shortlist = np.argpartition(probs, len(probs) - _SHORTLIST)[-_SHORTLIST:]
        if probs[shortlist].sum() >= target:
            ranked = shortlist[np.argsort(-probs[shortlist], kind="stable")]
    if ranked is None:
        ranked = np.argsort(-probs, kind="stable" if len(probs) <= _SHORTLIST else None)
    keep = int(np.searchsorted(np.cumsum(probs[ranked]), target)) + 1
    return ranked[:keep]


def _pending_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop sequence."""
    return max(
        (n for s in stops for n in range(len(s) - 1, 0, -1) if text.endswith(s[:n])),
        default=0,
    )


def _check_params(max_tokens: int, temperature: float, top_p: float) -> None:
    if max_tokens < 1:
        raise InvalidInput(f"max_tokens must be at least 1, got {max_tokens}")
    if not temperature >= 0:
        raise InvalidInput(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise InvalidInput(f"top_p must be in (0, 1], got {top_p}")


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{name}: not valid JSON ({exc})", hint=_HINT) from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: expected a JSON object", hint=_HINT)
    return value


__all__ = ["ARCHITECTURE", "FILES", "BuiltinModel", "Generation", "tokenize", "train"]
