"""Speech to text (faster-whisper) and text to speech (Piper)."""
