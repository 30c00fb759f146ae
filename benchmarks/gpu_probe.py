"""CTranslate2 Whisper on a bare GPU machine (the `device` tool's), without this project.

The GPU machine lent to some sessions has Python 3.12, PyTorch and transformers but no Ray,
no faster-whisper and no network, and at most 64 MiB travel to it, so neither this project nor
the 75 MB tiny.en weights can run there. This probe measures what can: a Whisper model with
tiny.en's exact shape (random weights, converted to CTranslate2 on the spot) decoding a fixed
number of tokens for the same features on CUDA (float16) and CPU (int8). Compute cost per step
equals tiny.en's; transcripts are meaningless. Usage there:

    python3 benchmarks/gpu_probe.py --tokens 24 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def build_model(folder: Path, vocabulary: Path | None) -> Path:
    import ctranslate2
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(  # openai/whisper-tiny.en dimensions
        vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536,
        decoder_ffn_dim=1536, max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=50257, eos_token_id=50256, pad_token_id=50256,
        bos_token_id=50256,
    )
    hf = folder / "hf"
    WhisperForConditionalGeneration(config).save_pretrained(hf)
    out = folder / "ct2"
    ctranslate2.converters.TransformersConverter(str(hf)).convert(str(out), quantization="float16")
    if vocabulary is not None:  # tiny.en's real vocabulary and special-token config
        for name in ("vocabulary.txt", "config.json"):
            (out / name).write_bytes((vocabulary / name).read_bytes())
        (out / "vocabulary.json").unlink(missing_ok=True)
    return out


def time_decode(model_dir: Path, device: str, compute_type: str, tokens: int,
                rounds: int, audio_s: float) -> dict[str, object]:
    import ctranslate2
    import numpy as np

    model = ctranslate2.models.Whisper(str(model_dir), device=device, compute_type=compute_type)
    features = ctranslate2.StorageView.from_array(
        np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32))
    prompt = [["<|startoftranscript|>", "<|notimestamps|>"]]

    def once() -> float:
        started = time.perf_counter()
        # end of text suppressed: every run decodes exactly `tokens` steps
        model.generate(features, prompt, max_length=tokens, beam_size=1,
                       suppress_tokens=[-1, 50256], suppress_blank=False)  # 50256: end of text
        return time.perf_counter() - started

    once()  # warm-up
    seconds = [once() for _ in range(rounds)]
    rtf = [s / audio_s for s in seconds]
    return {"device": device, "compute_type": compute_type, "tokens": tokens,
            "seconds_avg": statistics.fmean(seconds), "rtf_avg": statistics.fmean(rtf),
            "rtf_min": min(rtf), "rtf_max": max(rtf), "n": rounds}


def main() -> None:
    import ctranslate2

    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--vocabulary", type=Path, default=None,
                        help="folder with tiny.en's vocabulary.txt and config.json")
    parser.add_argument("--audio-s", type=float, default=3.6,
                        help="duration the features stand for (a typical caller line)")
    args = parser.parse_args()
    result: dict[str, object] = {"cuda_devices": ctranslate2.get_cuda_device_count()}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp), args.vocabulary)
        result["cpu"] = time_decode(model, "cpu", "int8", args.tokens, args.rounds, args.audio_s)
        try:
            result["cuda"] = time_decode(model, "cuda", "float16", args.tokens, args.rounds,
                                         args.audio_s)
        except (RuntimeError, ValueError) as e:
            result["cuda"] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
