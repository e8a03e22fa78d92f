"""Local language models behind one small protocol.

``LLM.stream(messages)`` returns a :class:`ReplyStream`: iterate it for text
as the model writes it, call ``cancel()`` from any thread to stop it, read
``usage`` once it is over. Two backends implement it: :mod:`.ollama` (the
official client over HTTP) and :mod:`.embedded` (llama.cpp in-process).
:func:`~.select.open_llm` picks one.
"""

from .base import LLM, Message, ReplyStream, Usage

__all__ = ["LLM", "Message", "ReplyStream", "Usage"]
