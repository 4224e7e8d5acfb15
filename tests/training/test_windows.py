import numpy as np
import torch

from fm.data.windows import WindowDataset, WindowSpec, collate, open_split


def test_windows_deterministic_masks_and_future(corpus):
    spec = WindowSpec(context_patches=8, horizon_patches=2, patch_len=16, mask_ratio=0.25, seed=7)
    a = WindowDataset(open_split(corpus, "train"), spec)
    b = WindowDataset(open_split(corpus, "train"), spec)
    assert len(a) > 100
    for i in (0, 5, len(a) - 1):
        torch.testing.assert_close(a[i]["target_mask"], b[i]["target_mask"])
        tm = a[i]["target_mask"][0].numpy()
        assert tm[-2:].all() and tm[:8].sum() >= 2  # future + ~25% of the context
    assert not torch.equal(a[0]["target_mask"], a[1]["target_mask"])


def test_eval_windows_target_only_after_prefix(corpus):
    spec = WindowSpec(context_patches=40, horizon_patches=4, patch_len=16, stride_patches=4)
    ds = WindowDataset(open_split(corpus, "test"), spec, plants=["line_c"])
    assert len(ds) > 0
    prefix = ds.series[0]["prefix_len"]
    starts = ds.index[:, 1]
    assert (starts + 40 * 16 >= prefix).all()


def test_collate_pads_channels(corpus):
    spec = WindowSpec(context_patches=4, horizon_patches=1, patch_len=16)
    ds = WindowDataset(open_split(corpus, "train"), spec)
    by_c = {}
    for i in range(0, len(ds), 50):
        by_c.setdefault(ds[i]["values"].shape[0], ds[i])
    assert len(by_c) >= 2  # assets with different channel counts
    batch = collate(list(by_c.values()))
    c = max(by_c)
    assert batch["values"].shape[1] == c
    assert batch["channel_mask"].sum(1).tolist() == list(by_c)
    assert int(batch["n_future"]) == 1
    assert not np.any(batch["observed"][~batch["channel_mask"]].numpy())


def test_windows_are_read_from_the_memory_mapped_corpus(corpus):
    import pickle

    rows = open_split(corpus, "train")
    ds = WindowDataset(rows, WindowSpec(context_patches=8, horizon_patches=2, patch_len=16))
    assert "values" not in ds.series[0]  # only metadata + the window index live in memory
    arrow_bytes = rows.data.table.nbytes
    assert len(pickle.dumps(ds)) < arrow_bytes / 10  # workers receive file paths, not the data
    # a window equals the same slice of the stored series
    sid, start = ds.index[17]
    full = np.stack(rows[int(ds.series[sid]["row"])]["values"]).astype(np.float32)
    np.testing.assert_array_equal(ds.window_arrays(int(sid), int(start))[0], full[:, start : start + ds.spec.length])
