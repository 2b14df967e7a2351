"""The trained tuner models and the only place that reads or writes model files.

``tuning/models/`` (this package) ships the trained classifier and optimiser as package data
(``classifier.joblib``, ``optimiser.joblib``, ``metadata.json``), so a fresh clone or image
needs no training. :func:`default_models` loads them, or trains them (seeded) when they are
missing or unreadable; ``waterline tuner train`` rebuilds them (:func:`train_models`,
:func:`save_models`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning.classifier import ProfileClassifier
from tuning.optimiser import WaterlineOptimiser

MODEL_DIR = Path(__file__).resolve().parent
CLASSIFIER_FILE = "classifier.joblib"
OPTIMISER_FILE = "optimiser.joblib"
METADATA_FILE = "metadata.json"


@dataclass
class TunerModels:
    """The classifier and the optimiser, with their version records (what the daemon stores
    as model versions: name -> {version, sha256, seed, trained metadata...})."""

    classifier: ProfileClassifier
    optimiser: WaterlineOptimiser
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    training_seconds: float | None = None


def _version(name: str, data: bytes, meta: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in meta.items()
            if k in ("version", "seed", "quick", "model",
                     "heldout_accuracy", "heldout_accuracy_traffic_ports", "duration_ms")}
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            **keep}


def versions_of(classifier: ProfileClassifier, optimiser: WaterlineOptimiser
                ) -> dict[str, dict[str, Any]]:
    return {"classifier": _version("classifier", classifier.to_bytes(), classifier.metadata),
            "optimiser": _version("optimiser", optimiser.to_bytes(), optimiser.metadata)}


def train_models(seed: int = 0, *, quick: bool = False,
                 log: Callable[[str], None] | None = None) -> TunerModels:
    """Simulate and fit both models (``tuning.training``); deterministic in ``seed``."""
    from tuning.training import TrainConfig, train

    result = train(TrainConfig(seed=seed, quick=quick), log=log)
    opt = result.optimiser.settled()
    return TunerModels(result.classifier, opt, versions_of(result.classifier, opt),
                       round(result.seconds, 1))


def save_models(models: TunerModels, directory: Path | str = MODEL_DIR) -> dict[str, Path]:
    """Write the model files into ``directory``; returns their paths. The training time, when
    known, goes into ``metadata.json`` only: the model files are the same bytes for the same
    seed however long it took."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    c = models.classifier.to_bytes()
    o = models.optimiser.to_bytes()
    paths = {"classifier": d / CLASSIFIER_FILE, "optimiser": d / OPTIMISER_FILE,
             "metadata": d / METADATA_FILE}
    paths["classifier"].write_bytes(c)
    paths["optimiser"].write_bytes(o)
    meta: dict[str, Any] = {"versions": {"classifier": _version("classifier", c, models.classifier.metadata),
                         "optimiser": _version("optimiser", o, models.optimiser.metadata)},
            "classifier": models.classifier.metadata,
            "optimiser": models.optimiser.metadata}
    if models.training_seconds is not None:
        meta["training_seconds"] = models.training_seconds
    paths["metadata"].write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return paths


def load_models(directory: Path | str = MODEL_DIR) -> TunerModels:
    """Read the model files of ``directory`` (FileNotFoundError / ValueError when absent or
    not models)."""
    d = Path(directory)
    c = (d / CLASSIFIER_FILE).read_bytes()
    o = (d / OPTIMISER_FILE).read_bytes()
    clf = ProfileClassifier.from_bytes(c)
    opt = WaterlineOptimiser.from_bytes(o)
    return TunerModels(clf, opt, {"classifier": _version("classifier", c, clf.metadata),
                                  "optimiser": _version("optimiser", o, opt.metadata)})


_DEFAULT: TunerModels | None = None


def default_models(*, reload: bool = False) -> TunerModels:
    """The shipped models (loaded once per process); trained with seed 0 when missing."""
    global _DEFAULT
    if _DEFAULT is None or reload:
        try:
            _DEFAULT = load_models(MODEL_DIR)
        except (OSError, ValueError, EOFError, KeyError):
            _DEFAULT = train_models(0)
    return _DEFAULT
