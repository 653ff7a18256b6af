"""Dataset registry: one record per data set (layout, grouping, synthetic or not, download, published results).

Every decision that depends on *which* data set runs reads a field of its :class:`DatasetInfo`
(``registry.get(params["dataset"]).synthetic``), never a comparison with its name. The data set's
parameter values (data root, class names, group pattern, image size) stay in
``params/datasets/<name>.yaml``; the fields here are facts about the data set that no parameter changes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

#: Layout kinds: ``split-folders`` ROOT/{train,val,test}/<class>/*; ``class-folders`` ROOT/<class>/*
#: (no official split); ``any-folders`` either of the two; ``npz`` one MedMNIST ``.npz`` file with its
#: official splits; ``generated`` written by :mod:`medclf.data.synthetic` (in the split-folders layout).
LAYOUTS = ("split-folders", "class-folders", "any-folders", "npz", "generated")


@dataclass(frozen=True)
class Archive:
    """One official download.

    Attributes:
        url: where it is published.
        filename: name of the downloaded file.
        checksum: ``"sha256:<hex>"`` or ``"md5:<hex>"`` as published, or ``None`` when none is published.
        marker: folders that identify the unpacked data set root (empty for a single file).
        source: who publishes the checksum, for the user.
    """

    url: str
    filename: str
    checksum: str | None
    marker: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class PublishedResult:
    """One result a paper reported on this data set, exactly as its authors reported it (never recomputed).

    Attributes:
        source: the citation, short: authors, year, journal volume:page.
        model: the model or method as the paper names it.
        evaluation: how and on what the authors measured it, e.g. ``"official test set (624 images),
            per image"`` or ``"5-fold cross-validation by patient, mean of the folds"``.
        roc_auc: ROC AUC in [0, 1], or ``None`` where the paper gives none.
        accuracy: accuracy in [0, 1] at the model's own decision (class-1 probability 0.5 in MedMNIST's
            evaluator; the argmax of a two-class softmax, the same rule, in the others), or ``None``.
        sensitivity: recall of the disease class (label 1), or ``None``.
        specificity: recall of the other class, or ``None``.
        note: one line: where in the paper the number is, and what differs from how we measure.
    """

    source: str
    model: str
    evaluation: str
    roc_auc: float | None = None
    accuracy: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    note: str = ""

    def __post_init__(self):
        if not (self.source.strip() and self.model.strip() and self.evaluation.strip()):
            raise ValueError(f"published result {self.model!r}: source, model and evaluation must be given")
        for name in ("roc_auc", "accuracy", "sensitivity", "specificity"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"published result {self.source} / {self.model}: {name} must lie in [0, 1] "
                                 f"(a fraction, not a percentage); got {value!r}")


_KERMANY = "Kermany et al. 2018, Cell 172:1122"
_MEDMNIST = "Yang et al. 2023 (MedMNIST v2), Sci Data 10:41"
_MEDMNIST_EVAL = "official test set (624 images), per image"
_MEDMNIST_NOTE = "MedMNIST v2 benchmark table (medmnist.com); accuracy at probability 0.5"
_RAJARAMAN = "Rajaraman et al. 2018, PeerJ 6:e4568"
_RAJARAMAN_EVAL = "5-fold cross-validation by patient, per cell, mean of the folds"


def _medmnist(model: str, roc_auc: float, accuracy: float) -> PublishedResult:
    return PublishedResult(_MEDMNIST, model, _MEDMNIST_EVAL, roc_auc, accuracy, note=_MEDMNIST_NOTE)


#: Published results per data set (``DatasetInfo.published``), transcribed from the papers (docs/STUDIES.md).
PUBLISHED: dict[str, tuple[PublishedResult, ...]] = {
    "chest_xray": (
        PublishedResult(
            _KERMANY, "Inception V3 (ImageNet), frozen, softmax retrained",
            "official test set (624 images), per image", roc_auc=0.968, accuracy=0.928, sensitivity=0.932,
            specificity=0.901,
            note="Results text and Fig. 6E; the model kept was the best on this test set (STAR Methods)"),
    ),
    "pneumoniamnist": tuple(_medmnist(*row) for row in (
        ("ResNet-18 (28)", 0.944, 0.854), ("ResNet-18 (224)", 0.956, 0.864), ("ResNet-50 (28)", 0.948, 0.854),
        ("ResNet-50 (224)", 0.962, 0.884), ("auto-sklearn", 0.942, 0.855), ("AutoKeras", 0.947, 0.878),
        ("Google AutoML Vision", 0.991, 0.946))),
    "malaria": (
        PublishedResult(_RAJARAMAN, "ResNet-50 features (res5c_branch2c) + dense classifier", _RAJARAMAN_EVAL,
                        roc_auc=0.991, accuracy=0.959, sensitivity=0.947, specificity=0.972,
                        note="Table 4 (their proposed model, Table 6); folds by patient, the layer chosen on them"),
        PublishedResult(_RAJARAMAN, "VGG-16 features (block5_conv2) + dense classifier", _RAJARAMAN_EVAL,
                        roc_auc=0.991, accuracy=0.959, sensitivity=0.949, specificity=0.969,
                        note="Table 4; folds by patient, the layer chosen on them"),
    ),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What is fixed about one data set.

    Attributes:
        name: the ``dataset`` parameter's value (and ``params/datasets/<name>.yaml``).
        description: one line for people.
        layout: one of :data:`LAYOUTS`.
        grouping: how images are grouped so that no group sits on both sides of a split (the
            pattern itself is the ``group_pattern`` parameter).
        synthetic: generated demo data: every output made from it is labelled as such.
        chest_like: chest X-rays, or images standing in for them.
        kermany_test: the test images are the official test set of the Kermany et al. chest X-rays (``chest_xray``,
            and PneumoniaMNIST's copies of it), gathered apart from the training folder. Text about those real
            images (their harder test set, the classes it fails on) is shown only where this is set
            (:func:`medclf.reporting.artifacts.show_note`), never on images that merely stand in for them.
        models_for: the data set whose registered models (``ModelSpec.dataset``) suit this one, or
            ``None`` when no model was designed for it.
        studies: studies (``docs/STUDIES.md``) whose published numbers on this data set the model
            registry carries as ``ModelSpec.reported``.
        archive: the official download, or ``None``.
        default_profile: the profile used when none is given.
        published: results papers reported on this data set (:class:`PublishedResult`), which the
            comparison sets beside ours marked "reported by the authors"; empty where none apply.
        study_reproduction: show the study-reproduction tables (our records beside the studies' numbers,
            ``ModelSpec.reported``). ``False`` where those numbers would mislead: PneumoniaMNIST uses the chest
            studies' models but its images are 28-px copies in other splits, so ``published`` replaces them; the
            synthetic demo's generated images are no study's data at all.
    """

    name: str
    description: str
    layout: str
    grouping: str
    synthetic: bool = False
    chest_like: bool = False
    kermany_test: bool = False
    models_for: str | None = None
    studies: tuple[str, ...] = ()
    archive: Archive | None = None
    default_profile: str = "quick"
    published: tuple[PublishedResult, ...] = ()
    study_reproduction: bool = True

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"dataset {self.name!r}: layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")


_RECORDS = (
    DatasetInfo(
        "synthetic", "Generated, seeded chest-X-ray-like images (NORMAL / PNEUMONIA) for the demo and tests.",
        "generated", "patient id from the file name, as chest_xray", synthetic=True, chest_like=True,
        models_for="chest_xray", default_profile="demo", study_reproduction=False),
    DatasetInfo(
        "chest_xray", "Kermany et al. 2018 chest X-rays (Kaggle chest-xray-pneumonia): NORMAL / PNEUMONIA.",
        "split-folders", "patient id from the file name (personNNN_, IM-NNNN, NORMAL2-IM-NNNN)",
        chest_like=True, kermany_test=True, models_for="chest_xray", studies=("S0", "S1", "S2", "S4"),
        published=PUBLISHED["chest_xray"],
        archive=Archive(
            "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
            "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded", "ChestXRay2017.zip",
            None, ("train", "test"),
            "Kermany et al. 2018, Mendeley Data rscbjbr9sj v2 (no checksum published; counts are checked instead)")),
    DatasetInfo(
        "malaria", "NIH/NLM thin-smear cell images: Uninfected / Parasitized.",
        "class-folders", "slide/patient id at the start of the file name (C100P61ThinF_... -> C100P61)",
        models_for="malaria", studies=("S3",), published=PUBLISHED["malaria"],
        archive=Archive(
            "https://data.lhncbc.nlm.nih.gov/public/Malaria/cell_images.zip", "cell_images.zip",
            "sha256:0a949556b2414159b5100192609805376654c4266d8d187be9b1922fad43c668",
            ("Parasitized", "Uninfected"), "NIH/NLM; checksum from TensorFlow Datasets' malaria checksums.tsv")),
    DatasetInfo(
        "pneumoniamnist", "MedMNIST v2 PneumoniaMNIST (28x28 chest X-rays) with its official splits.",
        "npz", "none: each image is its own group (official splits kept)", chest_like=True, kermany_test=True,
        models_for="chest_xray",
        published=PUBLISHED["pneumoniamnist"], study_reproduction=False,
        archive=Archive(
            "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1", "pneumoniamnist.npz",
            "md5:28209eda62fecd6e6a2d98b1501bb15f", (), "MedMNIST v2 (Zenodo record 10519652); MD5 from MedMNIST")),
    DatasetInfo(
        "folder", "Any user data set: ROOT/<class>/* or ROOT/<split>/<class>/*.",
        "any-folders", "group_pattern if set, else each file its own group"),
)

#: Every registered data set by name, in a fixed order.
DATASETS: dict[str, DatasetInfo] = {record.name: record for record in _RECORDS}


def names() -> tuple[str, ...]:
    """The registered data set names."""
    return tuple(DATASETS)


def closest(name: str, known) -> str:
    """``" (did you mean a or b?)"`` for the known names nearest to ``name`` (difflib), or ``""``."""
    near = difflib.get_close_matches(str(name), [str(k) for k in known], n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def get(name: str) -> DatasetInfo:
    """The record of ``name``.

    Raises:
        KeyError: an unknown name; the message lists the registered ones and the closest.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}{closest(name, DATASETS)} (registered: "
                       f"{', '.join(DATASETS)})") from None
