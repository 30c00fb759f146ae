"""How long Piper pauses inside one caller line, and how fast it speaks.

The Deepgram simulator ends an utterance after a stretch of silence; that stretch must be longer
than any pause Piper makes inside one line (after a comma or between two sentences), or one
caller line becomes two transcripts. This prints, for every line of every scenario, the longest
silent run between the first and the last speech (speech = a 10 ms window whose int16 RMS is at
least the simulator's ``SPEECH_RMS``, measured on the 16 kHz audio the caller sends), the speech
span and the speaking rate in words per second.

    python -m benchmarks.piper_pauses            # loads Piper: run it alone on the machine
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voice_ai.audio import resample_pcm, rms
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.simulators.deepgram import SPEECH_RMS

ROOT = Path(__file__).resolve().parent.parent
RATE = 16_000
WINDOW_S = 0.01


def speech_runs(pcm16: bytes, rate: int = RATE) -> tuple[float, float, float]:
    """``(first speech s, last speech end s, longest inner silence s)`` of one line's audio."""
    step = int(rate * WINDOW_S) * 2
    voiced = [rms(pcm16[i : i + step]) >= SPEECH_RMS for i in range(0, len(pcm16), step)]
    if not any(voiced):
        return 0.0, 0.0, 0.0
    first = voiced.index(True)
    last = len(voiced) - 1 - voiced[::-1].index(True)
    longest = run = 0
    for v in voiced[first : last + 1]:
        run = 0 if v else run + 1
        longest = max(longest, run)
    return first * WINDOW_S, (last + 1) * WINDOW_S, longest * WINDOW_S


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from piper import PiperVoice

    from voice_ai.providers.local.models import default_piper_voice

    voice = PiperVoice.load(str(default_piper_voice()))
    source_rate = int(voice.config.sample_rate)
    files = sorted(ROOT.glob("scenarios/*.yaml")) + sorted(ROOT.glob("scenarios/bench/*.yaml"))
    lines = sorted({t.say for f in files for t in load_scenario(f).turns})
    rows = []
    for text in lines:
        pcm = b"".join(c.audio_int16_bytes for c in voice.synthesize(text))
        start, end, pause = speech_runs(resample_pcm(pcm, source_rate, RATE))
        words = len(text.split())
        rows.append({"line": text, "words": words, "speech_s": round(end - start, 3),
                     "lead_s": round(start, 3), "inner_pause_max_s": round(pause, 3),
                     "words_per_s": round(words / (end - start), 2) if end > start else None})
        print(f"{pause * 1000:5.0f} ms  {end - start:5.2f} s  {rows[-1]['words_per_s']} w/s  "
              f"{text}")
    rates = [r["words_per_s"] for r in rows if r["words_per_s"]]
    result = {"lines": len(rows), "speech_rms_threshold": SPEECH_RMS,
              "inner_pause_max_s": max(float(r["inner_pause_max_s"]) for r in rows),
              "words_per_s_avg": round(sum(rates) / len(rates), 2), "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
