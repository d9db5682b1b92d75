"""Speech-enhancement corpora: source discovery, TTS voices, the mixed corpus and standard sets."""
