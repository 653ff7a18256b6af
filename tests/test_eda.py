"""EDA computations on a small hand-made data set whose numbers are known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medclf.analysis import eda, patients
from medclf.data.dataset import FRAME_COLUMNS, Dataset

CLASSES = ["NORMAL", "PNEUMONIA"]

# split, class, source_split, group, orig_width
ROWS = [
    ("train", "NORMAL", "val", "p1", 100),
    ("train", "NORMAL", "train", "p1", 200),
    ("train", "NORMAL", "train", "p2", 300),
    ("train", "PNEUMONIA", "train", "p3", 10),
    ("train", "PNEUMONIA", "train", "p3", 20),
    ("train", "PNEUMONIA", "train", "p4", 30),
    ("train", "PNEUMONIA", "train", "p5", 40),
    ("val", "NORMAL", "train", "p6", 400),
    ("val", "PNEUMONIA", "train", "p7", 50),
    ("test", "NORMAL", "test", "p8", 500),
    ("test", "PNEUMONIA", "test", "p9", 60),
    ("test", "PNEUMONIA", "test", "p9", 70),
]


def make_dataset(rows=ROWS, channels: int = 1, size: int = 4, **settings) -> Dataset:
    """NORMAL images: left half 0, right half 100. PNEUMONIA: all 200, except the one in val all 100."""
    frame = pd.DataFrame([{
        "relpath": f"{src or 'x'}/{cls}/{group}_{i}.png", "class_name": cls, "label": CLASSES.index(cls),
        "source_split": src, "split": split, "group": group, "sha256": f"{i:064x}", "file_bytes": 1000 + i,
        "orig_width": width, "orig_height": 2 * width, "orig_mode": "L" if i % 4 else "RGB",
    } for i, (split, cls, src, group, width) in enumerate(rows)], columns=list(FRAME_COLUMNS))
    images = np.zeros((len(rows), size, size, channels), np.uint8)
    for i, (split, cls, *_rest) in enumerate(rows):
        if cls == "NORMAL":
            images[i, :, size // 2:] = 100
        else:
            images[i] = 100 if split == "val" else 200
    return Dataset(name="synthetic", frame=frame, images=images, class_names=list(CLASSES),
                   positive_class="PNEUMONIA",
                   skipped=pd.DataFrame({"relpath": ["a.txt", "b.png", "c.png"],
                                         "reason": ["not an image", "corrupt", "corrupt"]}),
                   manifest_hash="0" * 16, **{"seed": 0, **settings})


@pytest.fixture
def ds() -> Dataset:
    return make_dataset()


def test_class_counts_per_split(ds):
    tidy = eda.class_counts(ds)
    assert list(tidy.columns) == ["split", "class_name", "count"]
    assert tidy["split"].tolist() == ["train", "train", "val", "val", "test", "test"]
    assert tidy["count"].tolist() == [3, 4, 1, 1, 1, 2]


def test_counts_pivot_has_totals(ds):
    pivot = eda.counts_pivot(eda.class_counts(ds))
    assert pivot.index.tolist() == ["train", "val", "test", "total"]
    assert pivot.columns.tolist() == ["NORMAL", "PNEUMONIA", "total"]
    assert pivot.loc["train"].tolist() == [3, 4, 7]
    assert pivot.loc["test"].tolist() == [1, 2, 3]
    assert pivot.loc["total"].tolist() == [5, 7, 12]
    shares = eda.class_shares(pivot)
    assert shares.loc["train", "PNEUMONIA"] == pytest.approx(4 / 7, abs=1e-4)


def test_counts_per_source_split(ds):
    pivot = eda.counts_pivot(eda.class_counts(ds, by="source_split"))
    assert pivot.index.tolist() == ["train", "val", "test", "total"]
    assert pivot["NORMAL"].tolist() == [3, 1, 1, 5]
    assert pivot["PNEUMONIA"].tolist() == [5, 0, 2, 7]


def test_counts_without_source_split():
    rows = [(split, cls, "", group, w) for split, cls, _src, group, w in ROWS]
    tidy = eda.class_counts(make_dataset(rows), by="source_split")
    assert tidy["source_split"].unique().tolist() == [eda.NO_SOURCE_SPLIT]
    assert tidy["count"].tolist() == [5, 7]
    with pytest.raises(ValueError):
        eda.class_counts(make_dataset(), by="label")


def test_size_stats(ds):
    table = eda.size_stats(ds).set_index("class_name")
    assert table.loc["NORMAL", ["images", "width_min", "width_median", "width_max", "width_mean"]].tolist() \
        == [5, 100, 300, 500, 300]
    assert table.loc["PNEUMONIA", ["width_min", "width_median", "width_max", "width_mean"]].tolist() \
        == [10, 40, 70, 40]
    assert table.loc["PNEUMONIA", "height_max"] == 140
    modes = eda.mode_counts(ds).set_index("class_name")
    assert modes.loc["NORMAL"].sum() == 5 and modes["RGB"].sum() == 3


def test_intensity_stats(ds):
    per_image = eda.image_stats(ds)
    assert len(per_image) == 12
    assert per_image.loc[0, ["mean", "std", "min", "max"]].tolist() == [50, 50, 0, 100]
    stats = eda.intensity_stats(ds, per_image).set_index("class_name")
    assert stats.loc["NORMAL", ["images", "mean", "std", "min", "max"]].tolist() == [5, 50, 50, 0, 100]
    assert stats.loc["NORMAL", "image_mean_std"] == 0
    pneumonia = stats.loc["PNEUMONIA"]
    assert pneumonia["mean"] == pytest.approx(1300 / 7, abs=1e-3)
    assert pneumonia["std"] == pytest.approx(np.sqrt(6 / 49) * 100, abs=1e-3)
    assert (pneumonia["min"], pneumonia["max"]) == (100, 200)
    assert "mean_R" not in stats


def test_intensity_stats_rgb_has_channel_means():
    ds = make_dataset(channels=3)
    ds.images[..., 0] = 10  # red channel constant
    stats = eda.intensity_stats(ds).set_index("class_name")
    assert stats.loc["NORMAL", "mean_R"] == 10
    assert stats.loc["NORMAL", "mean_G"] == 50


def test_pixel_histograms(ds):
    hist = eda.pixel_histograms(ds)
    assert hist.shape == (256, 2)
    assert hist.sum().tolist() == pytest.approx([1, 1])
    assert hist.loc[0, "NORMAL"] == 0.5 and hist.loc[100, "NORMAL"] == 0.5
    assert hist.loc[200, "PNEUMONIA"] == pytest.approx(6 / 7)
    counts = eda.pixel_histograms(ds, density=False)
    assert counts["PNEUMONIA"].sum() == 7 * 16


def test_mean_images(ds):
    means = eda.mean_images(ds)
    assert list(means) == CLASSES
    assert means["NORMAL"].shape == (4, 4, 1) and means["NORMAL"].dtype == np.float32
    assert means["NORMAL"][:, :2].max() == 0 and means["NORMAL"][:, 2:].min() == 100
    assert np.allclose(means["PNEUMONIA"], 1300 / 7)


def test_sample_indices_seeded(ds):
    picks = eda.sample_indices(ds, n=2)
    assert list(picks) == CLASSES
    assert [len(v) for v in picks.values()] == [2, 2]
    assert set(ds.frame.loc[picks["NORMAL"], "class_name"]) == {"NORMAL"}
    assert all(np.array_equal(a, b) for a, b in zip(picks.values(), eda.sample_indices(ds, n=2).values()))
    assert [len(v) for v in eda.sample_indices(ds, n=10).values()] == [5, 7]
    val = eda.sample_indices(ds, n=5, split="val")
    assert val["NORMAL"].tolist() == [7] and val["PNEUMONIA"].tolist() == [8]


def test_group_counts(ds):
    table = patients.group_counts(ds).set_index(["split", "class_name"])
    assert table.loc[("train", "NORMAL"), ["images", "groups"]].tolist() == [3, 2]
    assert table.loc[("train", "PNEUMONIA"), ["images", "groups"]].tolist() == [4, 3]
    assert table.loc[("train", "total"), ["images", "groups"]].tolist() == [7, 5]
    assert table.loc[("test", "PNEUMONIA"), ["images", "groups", "images_per_group"]].tolist() == [2, 1, 2.0]
    assert len(table) == 9


def test_group_leaks(ds):
    assert patients.group_leaks(ds).empty
    rows = list(ROWS)
    rows[7] = ("val", "NORMAL", "train", "p1", 400)
    leaks = patients.group_leaks(make_dataset(rows))
    assert leaks.to_dict("records") == [{"group": "p1", "splits": "train, val", "official": False, "images": 3,
                                         "by_image": False}]
    by_image = make_dataset(rows, split_by_image=["NORMAL"])
    assert patients.group_leaks(by_image)["by_image"].tolist() == [True]


def test_patients_in_training():
    rows = list(ROWS)
    rows[10] = ("test", "PNEUMONIA", "test", "p3", 60)  # one of p3's images is in training
    table = patients.patients_in_training(make_dataset(rows)).set_index(["split", "class_name"])
    assert table.loc[("test", "PNEUMONIA")].tolist() == [2, 1, 0.5]
    assert table.loc[("test", "NORMAL")].tolist() == [1, 0, 0.0]
    assert table.loc[("val", "PNEUMONIA"), "patient_in_train"] == 0 and len(table) == 4



def test_group_number_ranges():
    rows = [("train", "NORMAL", "train", "IM-10", 1), ("train", "NORMAL", "train", "IM-12", 1),
            ("train", "NORMAL", "train", "IM-12", 1), ("train", "NORMAL", "train", "N2-IM-30", 1),
            ("train", "PNEUMONIA", "train", "person5", 1), ("val", "NORMAL", "train", "IM-11", 1),
            ("test", "NORMAL", "test", "IM-2", 1), ("test", "NORMAL", "test", "IM-3", 1),
            ("test", "NORMAL", "test", "IM-11", 1), ("test", "NORMAL", "test", "N2-IM-40", 1),
            ("test", "PNEUMONIA", "test", "person7", 1), ("test", "PNEUMONIA", "test", "x", 1)]
    table = patients.group_number_ranges(make_dataset(rows)).set_index(["split", "class_name", "series"])
    assert table.loc[("train", "NORMAL", "IM-")].tolist() == [2, 10, 11.0, 12, 0, 0]  # IM-12's two images: one patient
    assert table.loc[("test", "NORMAL", "IM-")].tolist() == [3, 2, 3.0, 11, 2, 0]  # IM-2, IM-3 below every training IM-
    assert table.loc[("test", "NORMAL", "N2-IM-"), ["below_train", "above_train"]].tolist() == [0, 1]
    assert table.loc[("test", "PNEUMONIA", "person"), "groups"] == 1  # "x" has no number: left out
    assert table.index.get_level_values("split").tolist() == ["train"] * 3 + ["val"] + ["test"] * 3
    unnumbered = patients.group_number_ranges(make_dataset())  # p1, p2, ...: numbered, one series "p"
    assert set(unnumbered["series"]) == {"p"}
    assert patients.group_number_ranges(make_dataset([("train", "NORMAL", "train", "a", 1)])).empty


DUPS = pd.DataFrame({
    "dup_group": [0, 0, 1, 1, 2, 2, 2],
    "relpath": ["a", "b", "c", "d", "e", "f", "g"],
    "split": ["train", "train", "train", "test", "train", "val", "test"],
    "class_name": ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA", "NORMAL", "PNEUMONIA", "NORMAL"],
})


def test_duplicates_summary():
    summary = dict(eda.duplicates_summary(DUPS).itertuples(index=False))
    assert summary == {"duplicate groups": 3, "files in duplicate groups": 7, "redundant copies": 4,
                       "groups within one split": 1, "groups across splits": 2, "groups spanning classes": 1}
    table = eda.duplicate_table(DUPS)
    assert table["files"].tolist() == [2, 2, 3]
    assert table.loc[2, "splits"] == "train, val, test"
    assert table["cross_class"].tolist() == [False, False, True]


def test_duplicates_summary_empty():
    empty = DUPS.iloc[0:0]
    assert eda.duplicates_summary(empty)["value"].tolist() == [0, 0, 0, 0, 0, 0]
    assert eda.duplicate_table(empty).empty


def test_skipped_summary(ds):
    assert eda.skipped_summary(ds.skipped).to_dict("records") == [
        {"reason": "corrupt", "files": 2}, {"reason": "not an image", "files": 1}]
    assert eda.skipped_summary(ds.skipped.iloc[0:0]).empty


def test_hsv_channels():
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    image[1, 1] = (0, 0, 255)
    hsv = eda.hsv_channels(image)
    assert hsv.shape == (2, 2, 3)
    assert hsv[0, 0].tolist() == [0, 1, 1]
    assert hsv[1, 1, 0] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        eda.hsv_channels(np.zeros((2, 2, 1), np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_gaussian_blur_5x5(channels):
    image = np.zeros((9, 9, channels), np.uint8)
    image[4, 4] = 255
    blurred = eda.gaussian_blur(image)
    assert blurred.shape == image.shape and blurred.dtype == np.uint8
    assert blurred[4, 4, 0] < 255 and blurred[2, 4, 0] > 0  # spreads 2 pixels ...
    assert blurred[1, 4, 0] == 0 and blurred[4, 7, 0] == 0  # ... but not 3 (5x5 kernel)
    flat = np.full((6, 6, channels), 77, np.uint8)
    assert np.array_equal(eda.gaussian_blur(flat), flat)


def test_leak_report_sorts_leaks_by_cause_and_checks_patient_splits():
    rows = [("train", "NORMAL", "train", "a", 1), ("val", "NORMAL", "train", "a", 1),       # carved leak
            ("train", "PNEUMONIA", "train", "b", 1), ("val", "PNEUMONIA", "train", "b", 1),  # per-image class
            ("train", "NORMAL", "train", "c", 1), ("test", "NORMAL", "test", "c", 1)]       # official folders
    ds = make_dataset(rows, split_by_image=["PNEUMONIA"])
    report = patients.leak_report(ds)
    assert (report.official["group"].tolist(), report.by_image["group"].tolist(), report.carved["group"].tolist()) \
        == (["c"], ["b"], ["a"])
    assert "groups in more than one split: 3 (1 put there by the data set's own split folders, 1 by the per-image " \
           "carving, 1 by other carving)" in report.summary("patient", ["PNEUMONIA"])
    report.check("image")  # carving by image may split patients
    clean = patients.leak_report(make_dataset(rows[4:]))  # no group in two splits of ours
    assert clean.carved.empty and list(clean.carved.columns) == list(clean.leaks.columns)
    clean.check("patient")
    with pytest.raises(Exception, match="1 patients/groups were split"):
        report.check("patient")


def test_numbered_blocks_find_a_test_set_below_every_training_patient():
    ranges = pd.DataFrame({"split": ["test", "test", "val"], "class_name": ["NORMAL", "PNEUMONIA", "NORMAL"],
                           "series": ["IM-", "person", "IM-"], "groups": [3, 2, 1], "first": [1, 5, 9],
                           "last": [3, 90, 9], "below_train": [3, 1, 1]})
    blocks = patients.numbered_blocks(ranges)
    assert blocks["class_name"].tolist() == ["NORMAL"]
    assert "NORMAL `IM-` (3 patients, numbers 1–3)" in patients.block_note(blocks)
    assert patients.block_note(blocks.iloc[:0]) is None
