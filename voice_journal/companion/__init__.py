"""The companion: what it is told to be, and what it remembers of the session."""
