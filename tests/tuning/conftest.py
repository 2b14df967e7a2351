"""Tests that need the trained tuner models wait until they are shipped in tuning/models/
(`waterline tuner train` builds them); without them these tests would train for many minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

MODEL_FILE = Path(__file__).resolve().parents[2] / "tuning" / "models" / "classifier.joblib"
NEEDS_MODELS = ("test_tuner_eval.py", "test_tuner_models.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MODEL_FILE.exists():
        return
    skip = pytest.mark.skip(reason="the trained tuner models are not in tuning/models/ yet")
    for item in items:
        if item.path.name in NEEDS_MODELS:
            item.add_marker(skip)
