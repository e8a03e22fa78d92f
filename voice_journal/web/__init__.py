"""The journal in the browser: ``voice-journal serve`` (see :mod:`.server`)."""
