"""In-memory text pairs for retrieval data sets, and their train/val/test bundle.

Image data sets return ``DataSplits`` of ``TensorData``; a text retrieval data set returns
``TextSplits`` of ``TextPairs`` instead: the texts themselves, since tokenising belongs to the model.

Example:
    >>> pairs = TextPairs(["a"], ["fast editor"], ["A small and fast text editor."], [None])
    >>> len(pairs), pairs[0]
    (1, ('fast editor', 'A small and fast text editor.'))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import DeepslimError

# What image data sets (DataSplits) have and text ones do not.
IMAGE_ONLY = frozenset({"input_shape", "num_classes", "class_names", "mean", "std"})


@dataclass
class TextPairs:
    """Query/document pairs: ``queries[i]``'s answer is ``documents[i]``; ``ids[i]`` names the pair.

    ``sections[i]`` is an optional label per pair (``None`` where unknown).
    """

    ids: list[str]
    queries: list[str]
    documents: list[str]
    sections: list[str | None]

    def __post_init__(self):
        n = len(self.ids)
        if not len(self.queries) == len(self.documents) == len(self.sections) == n:
            raise ValueError(f"TextPairs fields differ in length: {n} ids, {len(self.queries)} queries, "
                             f"{len(self.documents)} documents, {len(self.sections)} sections")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, str]:
        return self.queries[index], self.documents[index]

    def take(self, indices) -> "TextPairs":
        """The pairs at ``indices``, in that order."""
        indices = list(indices)
        return TextPairs([self.ids[i] for i in indices], [self.queries[i] for i in indices],
                         [self.documents[i] for i in indices], [self.sections[i] for i in indices])


@dataclass
class TextSplits:
    """A text retrieval data set split three ways (the text counterpart of ``DataSplits``).

    ``stats`` holds how the corpus was built (records read, pairs dropped and why).
    """

    name: str
    train: TextPairs
    val: TextPairs
    test: TextPairs
    task: str = "retrieval"
    options: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def __getattr__(self, attr: str):
        # Commands written for image classification ask for these; a one-line error beats an
        # AttributeError traceback deep inside them.
        if attr in IMAGE_ONLY:
            raise DeepslimError(f"{self.name} is a text {self.task} data set: it has no {attr}",
                                hint="use it from Python (data.test.queries / documents) with "
                                     "deepslim.train.retrieval.retrieval_metrics; image commands cannot take it")
        raise AttributeError(attr)

    def describe(self) -> dict:
        """JSON-friendly summary stored in artifact metadata."""
        return {
            "name": self.name,
            "task": self.task,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "stats": self.stats,
            "options": self.options,
        }
