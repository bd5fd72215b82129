"""Facts shared by every stage: model and expert names, device resolution, L2 row normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeflow.common.device import resolve_device
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.names import (DENSE_MODEL, SEED_MODEL, expert_index, expert_model, expert_name,
                                   expert_of_model, is_expert_model)
from modeflow.common.vectors import normalize_rows


# --- names ------------------------------------------------------------------------------------------

def test_expert_names_and_models_round_trip():
    assert [expert_name(i) for i in (0, 3, 12)] == ["00", "03", "12"]
    assert [expert_model(i) for i in (0, 3, 12)] == ["expert_00", "expert_03", "expert_12"]
    assert expert_of_model("expert_03") == "03"
    assert expert_index("03") == expert_index("expert_03") == 3
    assert all(expert_index(expert_model(i)) == expert_index(expert_name(i)) == i for i in range(120))


def test_only_expert_models_are_experts():
    assert is_expert_model("expert_00")
    assert not any(is_expert_model(m) for m in (SEED_MODEL, DENSE_MODEL, "00"))
    with pytest.raises(ValueError, match="seed"):
        expert_of_model(SEED_MODEL)
    for bad in (DENSE_MODEL, "expert_x", "", "²"):
        with pytest.raises(ValueError):
            expert_index(bad)


# --- device -----------------------------------------------------------------------------------------

def test_resolve_device(monkeypatch):
    assert resolve_device("auto", "embed.device") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", "evaluate.device") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "evaluate.device") == "cpu"
    with pytest.raises(ConfigError, match=r"^evaluate\.device: 'cuda:0' asked for"):
        resolve_device("cuda:0", "evaluate.device")


# --- vectors ----------------------------------------------------------------------------------------

def test_every_output_mode_gives_the_same_bits():
    x = np.random.default_rng(0).normal(size=(257, 33)).astype(np.float32)
    reference = x / np.linalg.norm(x, axis=1)[:, None]
    fresh = normalize_rows(x)
    buffer = np.full_like(x, np.nan)
    into = normalize_rows(x, buffer)
    inplace = x.copy()
    assert normalize_rows(inplace, inplace) is inplace
    assert into is buffer and fresh.dtype == np.float32
    for got in (fresh, into, inplace, normalize_rows(x, allow_zero=True)):
        assert np.array_equal(got, reference)
    assert np.array_equal(normalize_rows(x, dtype=np.float64),
                          x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1)[:, None])


def test_bad_rows_are_input_errors_unless_zero_rows_are_allowed():
    x = np.ones((4, 3), np.float32)
    x[2] = 0
    with pytest.raises(InputDataError, match=r"chunk\.npy: row 12 is a zero or non-finite"):
        normalize_rows(x, np.empty_like(x), source="chunk.npy", first_row=10)
    x[2] = np.nan
    with pytest.raises(InputDataError, match="row 2"):
        normalize_rows(x)
    x[2] = 0
    out = normalize_rows(x, allow_zero=True)
    assert np.array_equal(out[2], np.zeros(3)) and np.allclose(np.linalg.norm(out[[0, 1, 3]], axis=1), 1)
