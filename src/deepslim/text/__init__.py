"""Text models: the pretrained ``minilm-l6`` sentence embedder and its tokenizer (the ``text`` extra).

Example:
    >>> import deepslim
    >>> from deepslim.text import tokenize
    >>> model = deepslim.load_pretrained("minilm-l6")                 # doctest: +SKIP
    >>> model(**tokenize(model, ["a cat"])).shape                     # doctest: +SKIP
    torch.Size([1, 384])
"""

from .batches import TextBatches
from .embedder import SentenceEmbedder, tokenize

__all__ = ["SentenceEmbedder", "TextBatches", "tokenize"]
