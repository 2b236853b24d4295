"""The extract flow's `dataset_name` reaches every place a source is built: the flow's own source
and each GPU partition's `llmformer priors extract` command."""

from __future__ import annotations

from PIL import Image

from flows.extract import ExtractPriorsParameters, _source, partition_command


def test_the_dataset_name_keys_the_flows_source_and_every_partition(tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8)).save(photos / "a.png")
    params = ExtractPriorsParameters(
        store=tmp_path / "store", images=photos, dataset=None, dataset_name="holiday", gpus=2
    )
    assert [item.dataset for item in _source(params).items()] == ["holiday"]
    for index in range(2):
        command = partition_command(params, index, 2)
        assert command[command.index("--dataset-name") + 1] == "holiday"
    unnamed = partition_command(params.model_copy(update={"dataset_name": None}), 0, 2)
    assert "--dataset-name" not in unnamed
