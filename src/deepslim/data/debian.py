"""``debian-descriptions``: Debian's package descriptions as a text retrieval data set.

The query is a package's short description (the first line of ``Description-en``), the answer
its long description, searched among every long description of the same split. The source is
APT's English translation lists (``apt-get update -o Acquire::Languages=en`` writes
``/var/lib/apt/lists/*_i18n_Translation-en*``); ``*_Packages*`` lists give each package's
Section when present.

``data_dir`` (``--data-dir``, or ``$DEEPSLIM_DEBIAN_DESCRIPTIONS``) may be:

- a folder holding ``*Translation-en*`` files (plain, ``.lz4``, ``.gz`` or ``.xz``) and
  optionally ``*Packages*`` files, such as a copy of ``/var/lib/apt/lists``;
- a JSONL file written by ``export_jsonl`` (or a folder holding ``debian-descriptions.jsonl``),
  one ``{"package", "description_md5", "short", "long", "section"}`` object a line.

Example:
    >>> from deepslim import load_dataset
    >>> data = load_dataset("debian-descriptions", data_dir="tests/data/fixtures/debian_small")  # doctest: +SKIP
    >>> data.test.queries[0], data.test.documents[0][:40]  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core import DeepslimError
from .registry import register_dataset
from .text import TextPairs, TextSplits

DEFAULT_DIR = Path("/var/lib/apt/lists")
ENV_VAR = "DEEPSLIM_DEBIAN_DESCRIPTIONS"
JSONL_NAME = "debian-descriptions.jsonl"
APT_HELPER = "/usr/lib/apt/apt-helper"
# A package whose sha1 maps below TEST_FRACTION is a test pair: 5.5% of bookworm's 57,874 unique pairs
# is just over 3,000 (3,297 measured; docs/text.md), what the issue asks for, and keeps evaluation on
# 2 cores short.
TEST_FRACTION = 0.055
HOW_TO_GET = ("fetch the English descriptions with `sudo apt-get update -o Acquire::Languages=en` "
              "(or `sh scripts/ensure_data.sh`), or pass --data-dir / $DEEPSLIM_DEBIAN_DESCRIPTIONS pointing at "
              "a folder of *Translation-en* files or a JSONL written by deepslim.data.debian.export_jsonl")
COMPRESSED = (".lz4", ".gz", ".xz")


@dataclass
class Record:
    """One package's description as the lists give it (before any deduplication)."""

    package: str
    description_md5: str
    short: str
    long: str
    section: str | None = None


def default_data_dir() -> Path:
    """``$DEEPSLIM_DEBIAN_DESCRIPTIONS`` if set, else APT's lists folder."""
    return Path(os.environ.get(ENV_VAR, DEFAULT_DIR))


def read_text(path: Path) -> str:
    """A list file's text, decompressing ``.gz``/``.xz`` here and ``.lz4`` with APT's own helper
    (Python has no lz4 in its standard library, and APT is there wherever such files are)."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes()).decode("utf-8", "replace")
    if path.suffix == ".lz4":
        helper = APT_HELPER if os.access(APT_HELPER, os.X_OK) else shutil.which("apt-helper")
        if not helper:
            raise DeepslimError(f"cannot read {path}: lz4 lists need {APT_HELPER}",
                                hint="run on a Debian/Ubuntu machine, or decompress the file (`lz4 -d`) first, "
                                     "or pass a JSONL written by export_jsonl")
        done = subprocess.run([helper, "cat-file", str(path)], capture_output=True)
        if done.returncode != 0:
            raise DeepslimError(f"apt-helper could not read {path}: {done.stderr.decode(errors='replace').strip()}",
                                hint=HOW_TO_GET)
        return done.stdout.decode("utf-8", "replace")
    return path.read_text(encoding="utf-8", errors="replace")


def long_text(lines: list[str]) -> str:
    """Debian's long-description markup as plain text: " ." separates paragraphs (one newline here),
    lines of a paragraph join with a space, and verbatim lines (two leading spaces) keep their own line."""
    paragraphs: list[str] = []
    current = ""
    for line in lines:
        content = line[1:]
        if content.strip() == ".":
            if current:
                paragraphs.append(current)
            current = ""
        elif content.startswith(" "):  # verbatim: lists, tables; the line break carries meaning
            current = f"{current}\n{content.strip()}" if current else content.strip()
        elif content.strip():
            current = f"{current} {content.strip()}" if current else content.strip()
    if current:
        paragraphs.append(current)
    return "\n".join(paragraphs)


def parse_stanzas(text: str) -> Iterator[dict[str, list[str]]]:
    """RFC 822-style stanzas: each field's first line and its continuation lines."""
    stanza: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
        elif line[0] in " \t" and key is not None:
            stanza[key].append(line)
        elif ":" in line:
            key, _, value = line.partition(":")
            stanza[key] = [value.strip()]
    if stanza:
        yield stanza


def parse_translation(text: str) -> Iterator[Record]:
    """Records of one ``Translation-en`` file (stanzas without a description are skipped)."""
    for stanza in parse_stanzas(text):
        if "Package" in stanza and "Description-en" in stanza:
            desc = stanza["Description-en"]
            yield Record(stanza["Package"][0], stanza.get("Description-md5", [""])[0], desc[0].strip(),
                         long_text(desc[1:]))


def parse_sections(text: str) -> dict[str, str]:
    """Package -> Section from one ``Packages`` file (the first stanza naming a package wins)."""
    # Only two fields matter here, and Packages files are large: scan lines, not whole stanzas.
    sections: dict[str, str] = {}
    package = None
    for line in text.splitlines():
        if line.startswith("Package:"):
            package = line[8:].strip()
        elif line.startswith("Section:") and package is not None:
            sections.setdefault(package, line[8:].strip())
        elif not line.strip():
            package = None
    return sections


def list_files(root: Path, marker: str) -> list[Path]:
    """Files whose name, less a compression suffix, ends with ``marker`` (so not ``Translation-en_GB``)."""
    return sorted(p for p in root.iterdir() if p.is_file()
                  and (p.stem if p.suffix in COMPRESSED else p.name).endswith(marker))


def read_lists(root: Path) -> list[Record]:
    """One record per package from a lists folder. A package described differently by several lists
    (a security update, say) keeps the description with the smallest md5, so the choice does not
    depend on file names or order."""
    translations = list_files(root, "Translation-en")
    if not translations:
        raise DeepslimError(f"no *_i18n_Translation-en* files in {root}", hint=HOW_TO_GET)
    chosen: dict[str, Record] = {}
    for path in translations:
        for record in parse_translation(read_text(path)):
            old = chosen.get(record.package)
            if old is None or record.description_md5 < old.description_md5:
                chosen[record.package] = record
    sections: dict[str, str] = {}
    for path in list_files(root, "_Packages"):
        for package, section in parse_sections(read_text(path)).items():
            sections.setdefault(package, section)
    for record in chosen.values():
        record.section = sections.get(record.package)
    return [chosen[p] for p in sorted(chosen)]


def read_jsonl(path: Path) -> list[Record]:
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                records.append(Record(row["package"], row.get("description_md5", ""), row["short"], row["long"],
                                      row.get("section")))
            except (ValueError, KeyError, TypeError) as e:
                raise DeepslimError(f"{path} line {number} is not a description record ({e})",
                                    hint="each line must be a JSON object with package, short and long; "
                                         "write the file with deepslim.data.debian.export_jsonl") from None
    return records


def read_records(source: str | Path | None = None) -> list[Record]:
    """Records from ``source`` (a lists folder, a JSONL file or a folder holding one); default APT's lists."""
    root = Path(source) if source else default_data_dir()
    if root.is_file():
        return read_jsonl(root)
    if not root.is_dir():
        raise DeepslimError(f"Debian descriptions: {root} does not exist", hint=HOW_TO_GET)
    if (root / JSONL_NAME).is_file():
        return read_jsonl(root / JSONL_NAME)
    return read_lists(root)


def export_jsonl(path: str | Path, source: str | Path | None = None) -> int:
    """Write the records of ``source`` (default APT's lists) as JSONL, a copy that loads anywhere.

    Returns the number of records written.

    Example:
        >>> export_jsonl("/tmp/debian-descriptions.jsonl")  # doctest: +SKIP
        63956
    """
    records = read_records(source)
    with Path(path).open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
    return len(records)


def bucket(package: str) -> float:
    """A package name's place in [0, 1): the first 8 bytes of its sha1, so splits never depend on order."""
    return int.from_bytes(hashlib.sha1(package.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def text_key(text: str) -> str:
    """What counts as the same text: equal up to case and whitespace."""
    return " ".join(text.split()).casefold()


def unique_pairs(records: Iterable[Record]) -> tuple[list[Record], dict]:
    """The records whose short and long texts each occur once in the whole corpus, and counts of the rest.

    Deduplicating over the whole corpus rather than per split means no test answer appears
    verbatim in train (no leakage through distillation or fine-tuning) and no test query has two
    right answers; a per-split rule would keep both kinds of duplicate.
    """
    records = list(records)
    with_long = [r for r in records if r.short.strip() and r.long.strip()]
    shorts = Counter(text_key(r.short) for r in with_long)
    longs = Counter(text_key(r.long) for r in with_long)
    kept = [r for r in with_long if shorts[text_key(r.short)] == 1 and longs[text_key(r.long)] == 1]
    stats = {"packages": len(records), "without_long_description": len(records) - len(with_long),
             "duplicate_text": len(with_long) - len(kept), "unique_pairs": len(kept)}
    return kept, stats


def to_pairs(records: list[Record]) -> TextPairs:
    return TextPairs([r.package for r in records], [r.short for r in records], [r.long for r in records],
                     [r.section for r in records])


@register_dataset("debian-descriptions", task="retrieval")
def debian_descriptions(*, subset=None, val_fraction=1 / 12, seed=0,
                        data_dir: str | Path | None = None) -> TextSplits:
    """Debian package descriptions: retrieve a package's long description from its short one (text).

    The split is a function of the package name only (sha1): ``TEST_FRACTION`` of the pairs are
    test, ``val_fraction`` of the rest val. ``subset`` keeps that many training pairs (the first in
    hash order); the test split is always whole. ``seed`` is recorded but unused, as nothing is random.
    """
    kept, stats = unique_pairs(read_records(data_dir))
    places = {r.package: bucket(r.package) for r in kept}
    val_end = TEST_FRACTION + val_fraction * (1 - TEST_FRACTION)
    test = [r for r in kept if places[r.package] < TEST_FRACTION]
    val = [r for r in kept if TEST_FRACTION <= places[r.package] < val_end]
    train = [r for r in kept if places[r.package] >= val_end]
    if subset is not None:
        train = sorted(sorted(train, key=lambda r: places[r.package])[:subset], key=lambda r: r.package)
    if not test:
        raise DeepslimError(f"Debian descriptions: no test pairs among {stats['unique_pairs']} unique pairs",
                            hint="the lists hold too few packages; " + HOW_TO_GET)
    return TextSplits("debian-descriptions", to_pairs(train), to_pairs(val), to_pairs(test),
                      options={"subset": subset, "val_fraction": val_fraction, "seed": seed,
                               "test_fraction": TEST_FRACTION},
                      stats=stats)
