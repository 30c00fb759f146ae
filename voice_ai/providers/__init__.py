"""Speech and language providers: livekit-agents' own ``stt.STT`` / ``llm.LLM`` / ``tts.TTS``.

- ``local/``: faster-whisper, llama.cpp and Piper as livekit providers (the embedded default
  and every cloud provider's fallback); ``cloud/build``: the Deepgram, OpenAI and Cartesia
  plugins configured from ``Settings``; ``factory``: one by stage and name.
- ``ports`` / ``wire``: the port to a provider pool in other processes (open a stream to a
  worker, send, receive) and what crosses it; ``host``: a worker's side; ``pool``: worker
  choice and restart retry; ``pooled``: livekit providers over a pool; ``memory``: the port
  in-process, for tests.
- ``segmenter``: whisper made a stream by the VAD, with an honest early transcript;
  ``clauses``: how much LLM text a voice waits for.
"""
