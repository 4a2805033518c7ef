"""The Ray Data scoring path against a plain torch loop over the same pool."""
import numpy as np
import pyarrow.dataset as pads
import pytest
import torch

from actors.scorer import select
from pipeline.acquisition import get_acquisition, top_k
from pipeline.data import get_source, images_from_arrow, prepare_dataset
from pipeline.models import create_model
from pipeline.training import predict, checkpoint_bytes
from tests.helpers import tiny_config

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("acquisition", ["least_confidence", "entropy", "margin"])
def test_uncertainty_acquisition_picks_exactly_the_least_sure_examples(ray_cluster, tiny_data_dir, work_dir,
                                                                       acquisition):
    config = tiny_config(tiny_data_dir, work_dir, f"acquisition={acquisition}", "scoring.batch_size=37")
    data = prepare_dataset(get_source("fashion_mnist", tiny_data_dir), config.data.cache_dir, config.data.shard_rows)
    torch.manual_seed(0)
    model = create_model("small_cnn", 1, 10)
    labelled = np.arange(0, data.pool_size, 3)  # every third id is already labelled

    chosen, seconds = select(config, data, "small_cnn", checkpoint_bytes(model), labelled, k=25, seed=0)

    table = pads.dataset(data.split_dir("pool"), format="parquet").to_table()
    pool_ids = table.column("id").to_numpy()
    images = torch.from_numpy(images_from_arrow(table.column("image"), data.image_shape).copy())
    probs = predict(model, images, mean=data.mean, std=data.std, device=torch.device("cpu"))
    scores = get_acquisition(acquisition).score(probs, pool_ids, seed=0)
    unlabelled = ~np.isin(pool_ids, labelled)
    expected, _ = top_k(pool_ids[unlabelled], scores[unlabelled], 25)
    np.testing.assert_array_equal(chosen, expected)
    assert seconds["score"] > 0 and seconds["select"] >= 0
    assert 0 < seconds["score_compute"] < seconds["score"]  # one actor: its compute fits inside the pass
