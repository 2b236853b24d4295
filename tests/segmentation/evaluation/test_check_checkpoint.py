"""`check_checkpoint`: both torch.save formats pass; what torch cannot open fails in one line."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch

from segmentation.evaluation.run import check_checkpoint

STATE = {"state_dict": {"weight": torch.ones(2, 3)}, "meta": {"iter": 1000}}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_both_torch_save_formats_pass(tmp_path, zip_format) -> None:
    path = tmp_path / "model.pth"
    torch.save(STATE, path, _use_new_zipfile_serialization=zip_format)
    check_checkpoint(path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["state_dict"]["weight"], torch.ones(2, 3))


def _zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "no tensors here")
    return buffer.getvalue()


def _truncated_zip_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save(STATE, buffer)
    return buffer.getvalue()[:-100]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a checkpoint",
        b"PK\x03\x04 cut short",
        b"\x80\x02}q\x00.",  # a pickle, but not torch's
        _zip_of_text(),
        _truncated_zip_checkpoint(),
    ],
    ids=["empty", "text", "zip-header", "plain-pickle", "zip-without-data", "truncated-zip"],
)
def test_unreadable_files_fail_naming_the_file(tmp_path, content) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        check_checkpoint(path)
    assert str(error.value) == f"checkpoint {path} is not a PyTorch checkpoint (torch.save file)"
