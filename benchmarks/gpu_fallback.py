"""The faster-whisper fallback pool on GPU vs CPU: real-time factor for the same audio.

Runs one whisper pool worker asking Ray for ``num_gpus=1`` (float16 on CUDA) and one on CPU
(int8), transcribes the same synthesized utterances on each, and prints the real-time factor
(processing time / audio duration; lower is faster). Where Ray sees no GPU it says it skipped
the GPU and measures the CPU path only.

    python -m benchmarks.gpu_fallback [--rounds 5] [--json FILE]
    python -m benchmarks.gpu_fallback --no-ray --model DIR   # the engine alone, no Ray
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import summary

UTTERANCES = (
    "Hello, I would like to book an appointment for Tuesday morning.",
    "Can you tell me about your cleaning prices?",
    "Thank you very much, goodbye.",
)


def synthesize_utterances() -> list[tuple[bytes, int]]:
    """The caller lines as 16-bit PCM, spoken by the Piper voice shipped in PyPI."""
    from voice_ai.config import Settings
    from voice_ai.providers.factory import build_tts_engine

    piper = build_tts_engine(Settings(), "piper")
    rate = piper.sample_rate
    return [(piper.synthesize_sync(text), rate) for text in UTTERANCES]  # type: ignore[attr-defined]


def measure(transcribe: Any, audio: list[tuple[bytes, int]], rounds: int) -> dict[str, Any]:
    """``transcribe(pcm, rate) -> text``; returns RTF statistics and the last transcripts."""
    rtfs, texts = [], []
    transcribe(*audio[0])  # warm-up: first call pays CUDA/ONNX initialisation
    for _ in range(rounds):
        for pcm, rate in audio:
            duration_s = len(pcm) / 2 / rate
            started = time.perf_counter()
            texts.append(transcribe(pcm, rate))
            rtfs.append((time.perf_counter() - started) / duration_s)
    return {"rtf": summary(rtfs), "transcripts": texts[-len(audio):]}


def run_without_ray(model: Path | None, rounds: int) -> dict[str, Any]:
    import ctranslate2

    from voice_ai.providers.local.models import default_whisper_model
    from voice_ai.providers.local.whisper import WhisperEngine

    audio = synthesize_utterances()
    path = model or default_whisper_model()
    results: dict[str, Any] = {"cuda_devices": ctranslate2.get_cuda_device_count()}
    devices = ["cpu"] + (["cuda"] if results["cuda_devices"] else [])
    for device in devices:
        engine = WhisperEngine(model_path=path, device=device)
        results[device] = {"compute_type": engine.compute_type,
                           **measure(engine.transcribe_sync, audio, rounds)}
    if not results["cuda_devices"]:
        results["gpu"] = "skipped: CTranslate2 sees no CUDA device"
    return results


def run_with_ray(rounds: int) -> dict[str, Any]:
    import ray

    from actors.provider_workers import SttWorker
    from actors.worker_setup import RUNTIME_ENV
    from voice_ai.config import Settings

    ray.init(address="local", include_dashboard=False, runtime_env=RUNTIME_ENV,
             log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        audio = synthesize_utterances()
        results: dict[str, Any] = {"ray_gpus": gpus}
        placements = [("cpu", 0.0)] + ([("cuda", 1.0)] if gpus >= 1 else [])
        for device, num_gpus in placements:
            settings = Settings(whisper_device=device)  # type: ignore[arg-type]
            worker = SttWorker.options(num_gpus=num_gpus, num_cpus=1).remote(  # type: ignore[attr-defined]
                settings, "whisper")
            info = ray.get(worker.info.remote())

            def transcribe(pcm: bytes, rate: int, w: Any = worker) -> str:
                return str(ray.get(w.transcribe.remote(pcm, rate)))

            results[device] = {"num_gpus": num_gpus, "device": info.get("device"),
                               **measure(transcribe, audio, rounds)}
            ray.kill(worker)
        if gpus < 1:
            results["gpu"] = "skipped: this Ray cluster has no GPU"
        return results
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-ray", action="store_true", help="measure the engine directly")
    parser.add_argument("--model", type=Path, default=None, help="CTranslate2 whisper folder")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args()
    started = time.time()
    body = run_without_ray(args.model, args.rounds) if args.no_ray else run_with_ray(args.rounds)
    result = {"benchmark": "gpu_fallback", "machine": platform.platform(),
              "wall_s": round(time.time() - started, 1), **body}
    for device in ("cpu", "cuda"):
        if device in result:
            rtf = result[device]["rtf"]
            print(f"{device:5s} RTF avg {rtf['avg']:.3f}  p50 {rtf['p50']:.3f}  "
                  f"p95 {rtf['p95']:.3f}  (n={rtf['n']})")
    if "gpu" in result:
        print(result["gpu"])
    if "cpu" in result and "cuda" in result:
        speedup = result["cpu"]["rtf"]["avg"] / result["cuda"]["rtf"]["avg"]
        print(f"speed-up GPU vs CPU: {speedup:.1f}x")
    print(json.dumps(result, indent=2))
    if args.json_path:
        args.json_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
