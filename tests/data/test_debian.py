"""debian-descriptions on a committed fixture (242 records of bookworm's lists); no APT lists needed."""

import copy
import gzip
import json
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deepslim.core import DeepslimError
from deepslim.data import TextPairs, TextSplits, debian, list_datasets, load_dataset

FIXTURE = Path(__file__).parent / "fixtures" / "debian_small"
MAIN = "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en"


def stanza(package, short, long_lines, md5="0" * 32):
    return f"Package: {package}\nDescription-md5: {md5}\nDescription-en: {short}\n" + "".join(
        f" {line}\n" for line in long_lines) + "\n"


@pytest.fixture(scope="module")
def data():
    return load_dataset("debian-descriptions", data_dir=FIXTURE)


def test_fixture_splits_are_unique_disjoint_and_deterministic(data):
    assert isinstance(data, TextSplits) and "debian-descriptions" in list_datasets()
    assert data.stats == {"packages": 242, "without_long_description": 1, "duplicate_text": 18, "unique_pairs": 223}
    assert (len(data.train), len(data.val), len(data.test)) == (199, 15, 9)
    splits = [data.train, data.val, data.test]
    ids = [i for s in splits for i in s.ids]
    assert len(ids) == len(set(ids)) == 223
    for field in ("queries", "documents"):  # unique over the whole corpus, not only per split
        texts = [debian.text_key(t) for s in splits for t in getattr(s, field)]
        assert len(texts) == len(set(texts))
    assert data.test.ids == sorted(data.test.ids)
    again = load_dataset("debian-descriptions", data_dir=FIXTURE)
    assert again.test == data.test and again.train == data.train
    i = data.test.ids.index("xmlindent")
    assert data.test.sections[i] == "devel" and data.test[i][0] == data.test.queries[i]
    assert data.describe()["sizes"] == {"train": 199, "val": 15, "test": 9}


def test_split_depends_on_the_package_name_only(data, tmp_path):
    for pairs, low, high in ((data.test, 0, debian.TEST_FRACTION), (data.train, debian.TEST_FRACTION, 1)):
        assert all(low <= debian.bucket(p) < high for p in pairs.ids)
    # drop every other record: a package in both corpora is in the same split in both
    path = tmp_path / "half.jsonl"
    debian.export_jsonl(path, FIXTURE)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[::2]) + "\n")
    half = load_dataset("debian-descriptions", data_dir=path)
    for name in ("train", "val", "test"):
        whole, part = set(getattr(data, name).ids), set(getattr(half, name).ids)
        others = {i for s in (data.train, data.val, data.test) for i in s.ids} - whole
        assert part and not part & others


def test_subset_keeps_train_pairs_and_the_whole_test_split(data):
    small = load_dataset("debian-descriptions", data_dir=FIXTURE, subset=50)
    assert len(small.train) == 50 and small.test == data.test and set(small.train.ids) <= set(data.train.ids)


def test_jsonl_export_loads_like_the_lists(data, tmp_path):
    assert debian.export_jsonl(tmp_path / debian.JSONL_NAME, FIXTURE) == 242
    row = json.loads((tmp_path / debian.JSONL_NAME).read_text().splitlines()[0])
    assert set(row) == {"package", "description_md5", "short", "long", "section"}
    for source in (tmp_path / debian.JSONL_NAME, tmp_path):  # the file, or a folder holding it
        assert load_dataset("debian-descriptions", data_dir=source) == load_dataset(
            "debian-descriptions", data_dir=FIXTURE)


def test_environment_variable_names_the_copy(monkeypatch, data):
    monkeypatch.setenv("DEEPSLIM_DEBIAN_DESCRIPTIONS", str(FIXTURE))
    assert load_dataset("debian-descriptions").test == data.test


def test_compressed_lists_are_read(tmp_path):
    text = (FIXTURE / MAIN).read_bytes()
    (tmp_path / f"{MAIN}.gz").write_bytes(gzip.compress(text))
    (tmp_path / "other_i18n_Translation-en.xz").write_bytes(lzma.compress(stanza("zz-extra", "z", ["zed"]).encode()))
    (tmp_path / "other_i18n_Translation-en_GB").write_text(stanza("zz-british", "z", ["colour"]))  # not English (en)
    records = debian.read_records(tmp_path)
    assert len(records) == 243 and records[-1].package == "zz-extra" and records[-1].section is None


def test_lz4_without_apt_helper_says_so(tmp_path, monkeypatch):
    (tmp_path / f"{MAIN}.lz4").write_bytes(b"not read")
    monkeypatch.setattr(debian, "APT_HELPER", str(tmp_path / "no-helper"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DeepslimError, match="lz4 lists need"):
        debian.read_records(tmp_path)


def test_long_description_markup():
    lines = [" First paragraph", " goes on.", " .", " Features:", "  * one", "  * two", " .", " Last."]
    assert debian.long_text(lines) == "First paragraph goes on.\nFeatures:\n* one\n* two\nLast."
    (record,) = debian.parse_translation(stanza("p", "short one", ["long", ".", "text"]))
    assert (record.package, record.short, record.long) == ("p", "short one", "long\ntext")


def test_duplicates_are_dropped_over_the_whole_corpus():
    R = debian.Record
    records = [R("a", "", "Same short", "long a"), R("b", "", "same  SHORT", "long b"),  # same short text
               R("c", "", "short c", "Shared long"), R("d", "", "short d", "shared long "),  # same long text
               R("e", "", "short e", ""), R("f", "", "short f", "long f")]
    kept, stats = debian.unique_pairs(records)
    assert [r.package for r in kept] == ["f"]
    assert stats == {"packages": 6, "without_long_description": 1, "duplicate_text": 4, "unique_pairs": 1}


def test_a_package_described_twice_keeps_the_smallest_md5_whatever_the_file_order(tmp_path):
    for first, second in (("a", "b"), ("b", "a")):
        folder = tmp_path / first
        folder.mkdir()
        (folder / f"{first}_i18n_Translation-en").write_text(stanza("pkg", "old", ["old text"], md5="1" * 32))
        (folder / f"{second}_i18n_Translation-en").write_text(stanza("pkg", "new", ["new text"], md5="0" * 32))
        (folder / "x_binary-amd64_Packages").write_text("Package: pkg\nVersion: 1\nSection: utils\n\n")
        (record,) = debian.read_records(folder)
        assert (record.short, record.section) == ("new", "utils")


def test_bad_sources_get_one_line_errors(tmp_path):
    with pytest.raises(DeepslimError, match="does not exist") as err:
        load_dataset("debian-descriptions", data_dir=tmp_path / "nowhere")
    assert "Acquire::Languages=en" in err.value.hint
    (tmp_path / "x_binary-amd64_Packages").write_text("Package: p\nSection: utils\n\n")
    with pytest.raises(DeepslimError, match="no .*Translation-en") as err:
        load_dataset("debian-descriptions", data_dir=tmp_path)
    assert "apt-get update -o Acquire::Languages=en" in err.value.hint
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"package": "p", "short": "s", "long": "l"}\n{"package": "q"}\n')
    with pytest.raises(DeepslimError, match="line 2 is not a description record"):
        load_dataset("debian-descriptions", data_dir=bad)
    one = tmp_path / "one.jsonl"
    one.write_text('{"package": "p", "short": "s", "long": "l"}\n')
    assert debian.bucket("p") > debian.TEST_FRACTION  # "p" is a train package: no test split
    with pytest.raises(DeepslimError, match="no test pairs"):
        load_dataset("debian-descriptions", data_dir=one)


def test_zoo_lists_it_as_a_retrieval_data_set(cli):
    code, out, _ = cli("zoo")
    assert code == 0 and "debian-descriptions task retrieval" in out


def test_ensure_data_notes_missing_descriptions_but_fails_only_for_fashion_mnist(tmp_path):
    script = Path(__file__).parents[2] / "scripts" / "ensure_data.sh"
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    env = {**os.environ, "DEEPSLIM_FASHION_MNIST": str(tmp_path), "DEEPSLIM_DEBIAN_DESCRIPTIONS": str(tmp_path / "no")}
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "DEEPSLIM_DEBIAN_DESCRIPTIONS" in done.stderr
    env["DEEPSLIM_FASHION_MNIST"] = str(tmp_path / "none")
    env["DEEPSLIM_DEBIAN_DESCRIPTIONS"] = str(FIXTURE)
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "Fashion-MNIST not found" in done.stderr and "Debian" not in done.stderr


def test_text_data_refuses_image_questions_in_one_line(data, cli, tmp_path):
    with pytest.raises(DeepslimError, match="text retrieval data set: it has no input_shape"):
        data.input_shape
    assert not hasattr(data, "images") and copy.deepcopy(data) == data
    assert data.test.take([1, 0]).ids == data.test.ids[1::-1]
    with pytest.raises(ValueError, match="differ in length"):
        TextPairs(["a"], ["q"], [], [None])
    code, _, err = cli("train", "--model", "lenet5", "--data", "debian-descriptions", "--data-dir", FIXTURE,
                       "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and "text retrieval data set" in err and not (tmp_path / "run").exists()
