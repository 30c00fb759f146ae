"""Local models shipped inside PyPI packages: faster-whisper, llama.cpp, Piper (no hub download)."""
