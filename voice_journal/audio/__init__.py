"""Audio in and out: files, the microphone, voice activity, the speaker."""
