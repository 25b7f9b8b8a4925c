import gzip
import struct

import numpy as np
import pytest

from deepslim.core import DeepslimError
from deepslim.data.idx import read_idx


def write_idx(path, array, compress=True):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return data


@pytest.mark.parametrize("compress", [True, False])
def test_reads_shape_and_values(tmp_path, compress):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    path = tmp_path / ("x.gz" if compress else "x")
    write_idx(path, array, compress)
    np.testing.assert_array_equal(read_idx(path), array)


def test_truncated_and_bad_magic_are_clear_errors(tmp_path):
    data = write_idx(tmp_path / "x", np.zeros((4, 5), np.uint8), compress=False)
    (tmp_path / "short").write_bytes(data[:-3])
    with pytest.raises(DeepslimError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(DeepslimError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DeepslimError, match="corrupt"):
        read_idx(tmp_path / "broken.gz")
