"""`llmformer priors extract` refuses, in one line and before any work, what would lose images
silently: a folder whose image ids another folder of the same name already holds in the store,
and a Parquet captions file whose captions are not text."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as parquet
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from storage import PriorStore

runner = CliRunner()


def _extract(folder: Path, captions: Path, store: Path, *extra: str):
    args = ["priors", "extract", "--images", str(folder), "--captioner", "file"]
    args += ["--captions", str(captions), "--store", str(store), "--no-progress", *extra]
    return runner.invoke(app, args)


def _summary_rows(output: str) -> dict[str, str]:
    cells = [line.split("│")[1:3] for line in output.splitlines() if line.count("│") == 3]
    return {label.strip(): value.strip() for label, value in cells}


def _photos(parent: Path, shades: list[int]) -> Path:
    """A folder named `photos` with one plain picture per shade: 0000.png, 0001.png, ..."""
    folder = parent / "photos"
    folder.mkdir(parents=True)
    for index, shade in enumerate(shades):
        Image.new("RGB", (24, 16), (shade, 128, 255 - shade)).save(folder / f"{index:04d}.png")
    return folder


def _images_by_dataset(store: Path) -> dict[str, list[str]]:
    sql = "SELECT dataset, list(path ORDER BY path) FROM images GROUP BY dataset"
    return dict(PriorStore(store).connect().execute(sql).fetchall())


def test_a_second_folder_of_the_same_name_is_refused_until_given_its_own_dataset_name(
    tmp_path, captions_for
) -> None:
    first, second = _photos(tmp_path / "a", [0, 40, 80]), _photos(tmp_path / "b", [120, 160, 200])
    ids = [f"{index:04d}.png" for index in range(3)]
    captions = captions_for(tmp_path / "captions.jsonl", dict.fromkeys(ids, "A red car."))
    store = tmp_path / "store"
    assert _extract(first, captions, store).exit_code == 0

    refused = _extract(second, captions, store)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "error: dataset 'photos' of the store already has 3 of these image ids for other "
        f"files, e.g. '0000.png' from {first / '0000.png'}, not {second / '0000.png'}; "
        "give this source another --dataset-name"
    )
    assert _images_by_dataset(store) == {"photos": [str(first / i) for i in ids]}

    renamed = _extract(second, captions, store, "--dataset-name", "photos_b")
    assert renamed.exit_code == 0, renamed.output
    rows = _summary_rows(renamed.stdout)
    assert (rows["done now"], rows["already there"]) == ("3", "0")
    assert _images_by_dataset(store) == {
        "photos": [str(first / i) for i in ids],
        "photos_b": [str(second / i) for i in ids],
    }
    again = _extract(first, captions, store)
    assert again.exit_code == 0, again.output
    assert _summary_rows(again.stdout)["already there"] == "3"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            ["--images", "{folder}", "--dataset-name", "my photos"],
            "error: dataset name 'my photos': use letters, digits, '_', '-' and '.' only "
            "(e.g. 'my_photos')",
        ),
        (
            ["--dataset", "demo", "--data-root", "{folder}", "--dataset-name", "mine"],
            "error: --dataset-name names a folder's or manifest's images, not a --dataset",
        ),
    ],
)
def test_a_dataset_name_that_cannot_be_used_is_one_line(
    tmp_path, noise_folder, source: list[str], message: str
) -> None:
    folder, captions = noise_folder(1)
    args = [part.format(folder=folder) for part in source]
    store = tmp_path / "store"
    options = ["--captioner", "file", "--captions", str(captions), "--store", str(store)]
    result = runner.invoke(app, ["priors", "extract", *args, *options])
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert not store.exists()


@pytest.mark.parametrize(
    ("captions", "problem"),
    [
        (pa.array([1, 2, 3]), "column 'caption' holds int64, not text"),
        (pa.array([b"A cat.", b"A dog.", b"A car."]), "column 'caption' holds binary, not text"),
        (pa.array(["A cat.", None, "A car."]), "column 'caption' has 1 missing (null) values"),
    ],
)
def test_a_parquet_caption_column_that_is_not_all_text_is_refused_leaving_nothing(
    tmp_path, noise_folder, captions: pa.Array, problem: str
) -> None:
    folder, good_captions = noise_folder(3)
    store = tmp_path / "store"
    assert _extract(folder, good_captions, store).exit_code == 0
    prior_sets = PriorStore(store).prior_set_ids()

    bad = tmp_path / "captions.parquet"
    ids = [f"{index:04d}.png" for index in range(3)]
    parquet.write_table(pa.table({"id": ids, "caption": captions}), bad)
    result = _extract(folder, bad, store)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: {problem}"
    assert PriorStore(store).prior_set_ids() == prior_sets


def test_a_store_folder_delta_rs_cannot_write_under_is_refused(tmp_path, captions_for) -> None:
    folder = _photos(tmp_path, [0])
    captions = captions_for(tmp_path / "captions.jsonl", {"0000.png": "A red car."})
    result = _extract(folder, captions, tmp_path / "store[1]")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: store folder {tmp_path / 'store[1]'} holds [ and ], which delta-rs cannot "
        "write under; choose a folder without square brackets"
    )
    assert not (tmp_path / "store[1]").exists()
