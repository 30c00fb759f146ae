"""What the Deepgram simulator says it heard: a scripted caller line, released word by word
as the audio of that line arrives.

The simulator does not recognise speech. Each caller line has a scripted text; the words of
that text count as spoken in proportion to the line's audio time (from its first speech),
at the line's own pace when its audio is known (``KnownLines``) or at ``WORDS_PER_S`` (Piper's
measured pace) otherwise. From that:

- an **interim** carries the words spoken up to ``INTERIM_LAG_S`` before the audio received so
  far, and never the whole line (Deepgram's interim lags the audio and its last words are
  unstable; the complete text comes with a final);
- a **final**, sent at a pause, carries the words spoken by the end of the speech before the
  pause, snapped to punctuation within ``SNAP_WORDS`` (Piper pauses at commas and full stops,
  so most pauses inside a line are where its text has punctuation); the rest of the line when
  that is its end. Only the end of the line completes it.

A line recognised by its audio (``KnownLines.identify``) gets its own text and pace. Any other
line takes the next text of the simulator's script and, its pace being unknown, is finalised
whole at its first pause.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "INTERIM_LAG_S",
    "MIN_PAUSE_S",
    "SPEECH_RMS",
    "WINDOW_S",
    "WORDS_PER_S",
    "KnownLines",
    "ScriptedLine",
    "OnsetCapture",
    "line_signature",
    "speech_span_s",
    "voiced_windows",
]

SPEECH_RMS = 300.0
"""int16 RMS of a 10 ms window at or above which it counts as speech."""
WINDOW_S = 0.01
WORDS_PER_S = 3.8
"""Piper ``en_US-joe-medium``'s pace over the scenarios' lines: 3.3-4.7, 3.8 on average
(``python -m benchmarks.piper_pauses``)."""
INTERIM_LAG_S = 0.3
SNAP_WORDS = 1.5  # a pause this close (in words) to punctuation is that punctuation's pause
MIN_PAUSE_S = 0.2
"""Silence before the simulator calls a pause (and may send a final), at any profile: longer
than Piper's gaps between words (<= 130 ms), shorter than its pauses at punctuation."""
ONSET_ABS = 1000  # first sample this loud after digital silence: where a line is matched
SIGNATURE_SAMPLES = 256
MATCH_MEAN_ABS = 4.0
"""Largest mean sample difference of a match: the audio reaching the STT can differ from what
the caller sent by rounding (livekit's pipeline moves samples through float: +-1)."""
ZERO_RUN = 160  # 10 ms of exact zeros at 16 kHz: the caller's silence between lines
_BOUNDARY_RE = re.compile(r"[,.;:!?]$")


def voiced_windows(pcm16: bytes, sample_rate: int) -> list[bool]:
    """Speech or not, per 10 ms window (a short last window counts on its own)."""
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype=np.int16)
    size = max(1, int(sample_rate * WINDOW_S))
    out = []
    for start in range(0, samples.size, size):
        window = samples[start : start + size].astype(np.float64)
        out.append(bool(np.sqrt(np.mean(window * window)) >= SPEECH_RMS))
    return out


def speech_span_s(pcm16: bytes, sample_rate: int) -> float:
    """Seconds from the first to the end of the last speech window (pauses included)."""
    voiced = voiced_windows(pcm16, sample_rate)
    if not any(voiced):
        return 0.0
    first = voiced.index(True)
    last = len(voiced) - 1 - voiced[::-1].index(True)
    return (last + 1 - first) * WINDOW_S


def line_signature(samples: np.ndarray, voiced_index: int) -> np.ndarray | None:
    """What recognises a line: ``SIGNATURE_SAMPLES`` samples from the first one at least
    ``ONSET_ABS`` loud after the last run of ``ZERO_RUN`` digital zeros before the line's first
    speech window (``voiced_index``). None when there is no such run or not enough samples."""
    head = samples[:voiced_index]
    loud_idx = np.flatnonzero(head != 0)
    prev = np.concatenate(([-1], loud_idx))
    nxt = np.concatenate((loud_idx, [head.size]))
    runs = np.flatnonzero(nxt - prev - 1 >= ZERO_RUN)
    if runs.size == 0:
        return None
    after = int(nxt[runs[-1]])
    loud = np.flatnonzero(np.abs(samples[after:].astype(np.int32)) >= ONSET_ABS)
    if loud.size == 0:
        return None
    onset = after + int(loud[0])
    if samples.size - onset < SIGNATURE_SAMPLES:
        return None
    return samples[onset : onset + SIGNATURE_SAMPLES].astype(np.int32)


class OnsetCapture:
    """Keeps the last second of audio, and from a line's first speech on, enough of it to
    compute the line's signature."""

    def __init__(self, sample_rate: int) -> None:
        self._keep = sample_rate  # one second
        self._history: deque[np.ndarray] = deque()
        self._held = 0
        self._capture: list[np.ndarray] | None = None
        self._voiced_index = 0

    def push(self, samples: np.ndarray) -> None:
        self._history.append(samples)
        self._held += samples.size
        while self._history and self._held - self._history[0].size >= self._keep:
            self._held -= self._history.popleft().size
        if self._capture is not None:
            self._capture.append(samples)

    def start(self, samples_left_in_chunk: int) -> None:
        """A line's first speech window starts ``samples_left_in_chunk`` before the end of the
        chunk just pushed."""
        self._capture = list(self._history)
        self._voiced_index = self._held - samples_left_in_chunk

    def signature(self) -> np.ndarray | None:
        """The line's signature (once per capture); None if it cannot be computed."""
        if not self._capture:
            return None
        samples = np.concatenate(self._capture)
        self._capture = None
        return line_signature(samples, self._voiced_index)


@dataclass
class KnownLines:
    """Caller lines whose audio the simulator has been given, recognised by the first samples
    of their speech (the caller sends each line after digital silence), up to rounding."""

    _lines: list[tuple[np.ndarray, str, float]] = field(default_factory=list)

    def learn(self, text: str, pcm16: bytes, sample_rate: int) -> None:
        samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype=np.int16)
        voiced = voiced_windows(pcm16, sample_rate)
        first = voiced.index(True) if any(voiced) else len(voiced)
        window = int(sample_rate * WINDOW_S)
        padded = np.concatenate((np.zeros(ZERO_RUN, dtype=np.int16), samples))
        signature = line_signature(padded, ZERO_RUN + first * window)
        if signature is None:
            raise ValueError(f"no speech onset in the audio of {text!r}")
        self._lines.append((signature, text, speech_span_s(pcm16, sample_rate)))

    def identify(self, signature: np.ndarray) -> tuple[str, float] | None:
        """``(text, speech span s)`` of the line starting with these samples, if known."""
        best: tuple[float, str, float] | None = None
        for known, text, span in self._lines:
            diff = float(np.mean(np.abs(known - signature)))
            if diff <= MATCH_MEAN_ABS and (best is None or diff < best[0]):
                best = (diff, text, span)
        return None if best is None else (best[1], best[2])

    def __len__(self) -> int:
        return len(self._lines)


class ScriptedLine:
    """One caller line's text, released as its audio arrives (module docstring)."""

    def __init__(self, text: str, *, speech_s: float | None = None) -> None:
        self.words = text.split()
        self.speech_s = speech_s if speech_s and speech_s > 0 else None
        ends = [i + 1 for i, w in enumerate(self.words) if _BOUNDARY_RE.search(w)]
        self.boundaries = sorted({*ends, len(self.words)})
        self.emitted = 0  # words already sent in finals

    @property
    def complete(self) -> bool:
        return self.emitted >= len(self.words)

    @property
    def remaining_text(self) -> str:
        return " ".join(self.words[self.emitted :])

    def spoken_words(self, line_s: float) -> float:
        """Words of the line spoken ``line_s`` seconds after its first speech."""
        if line_s <= 0:
            return 0.0
        if self.speech_s is not None:
            return len(self.words) * line_s / self.speech_s
        return line_s * WORDS_PER_S

    def interim_text(self, line_s: float) -> str:
        upto = min(int(self.spoken_words(line_s - INTERIM_LAG_S)), len(self.words) - 1)
        return " ".join(self.words[self.emitted : upto]) if upto > self.emitted else ""

    def take_final(self, line_s: float) -> str:
        """The words of a final for speech that paused ``line_s`` s into the line."""
        if self.complete:
            return ""
        count = len(self.words)
        if self.speech_s is None:  # pace unknown: the whole line at its first pause
            upto = count
        else:
            spoken = self.spoken_words(line_s)
            nearest = min((b for b in self.boundaries if b > self.emitted),
                          key=lambda b: (abs(b - spoken), b))
            if abs(nearest - spoken) <= SNAP_WORDS:
                upto = nearest
            else:  # a pause between two words: the words spoken so far, never the last
                upto = min(max(round(spoken), self.emitted + 1), count - 1)
        text = " ".join(self.words[self.emitted : upto])
        self.emitted = upto
        return text
