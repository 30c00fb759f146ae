"""One call's pipeline: transport in, AgentSession (VAD, STT, LLM, TTS) and transport out."""
