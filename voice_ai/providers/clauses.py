"""How much of the LLM's text a voice waits for before it speaks: a clause, a word, a sentence.

livekit's TTS plugins take a ``tokenize.SentenceTokenizer``; the default (blingfire) waits for a
whole sentence, so the first audio waits for the LLM's first full stop. ``ClauseTokenizer``
passes text on at the first clause boundary (``, ; : . ! ?`` or a dash) — or after
``max_words`` words when the text runs on without punctuation — and ``word`` granularity at
every word. Both are ``SentenceTokenizer`` subclasses, so a plugin that flushes per chunk
(Cartesia sets ``max_buffer_delay_ms=0`` for these) sends each piece at once.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from livekit.agents import tokenize
from livekit.agents.tokenize import SentenceStream
from livekit.agents.tokenize.token_stream import BufferedSentenceStream

__all__ = ["ClauseTokenizer", "Granularity", "split_clauses", "text_tokenizer"]

Granularity = Literal["word", "clause", "sentence"]
_BOUNDARY = re.compile(r"(?<=[,;:.!?…—])\s+|\s+(?=[—–-]\s)")


def split_clauses(text: str, *, max_words: int = 10) -> list[str]:
    """``text`` cut after each clause boundary, and runs longer than ``max_words`` cut too."""
    clauses: list[str] = []
    for part in _BOUNDARY.split(text):
        words = part.split()
        for i in range(0, len(words), max_words):
            clauses.append(" ".join(words[i : i + max_words]))
    return [c for c in clauses if c]


class ClauseTokenizer(tokenize.SentenceTokenizer):
    """Clauses of at least ``min_chars`` characters (shorter ones join the next clause)."""

    def __init__(self, *, min_chars: int = 4, max_words: int = 10) -> None:
        self._min_chars = min_chars
        self._max_words = max_words

    def tokenize(self, text: str, *, language: str | None = None) -> list[str]:
        return split_clauses(text, max_words=self._max_words)

    def stream(self, *, language: str | None = None) -> SentenceStream:
        return BufferedSentenceStream(
            tokenizer=functools.partial(split_clauses, max_words=self._max_words),
            min_token_len=self._min_chars, min_ctx_len=1)


def text_tokenizer(granularity: Granularity) -> tokenize.SentenceTokenizer:
    """The tokenizer for a TTS that should start at each ``granularity`` of text."""
    if granularity == "word":
        return ClauseTokenizer(min_chars=1, max_words=1)
    if granularity == "clause":
        return ClauseTokenizer()
    if granularity == "sentence":
        return tokenize.blingfire.SentenceTokenizer()
    raise ValueError(f"unknown text granularity {granularity!r}: expected word, clause or "
                     "sentence")
