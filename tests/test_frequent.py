"""The frequent-values summary: batch prefilter identical to full counting; merge bounds hold."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthound_sketch import _hashcount
from truthound_sketch.frequent import FrequentItems, value_counts


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.integers(0, 3000), min_size=1, max_size=6000),
    capacity=st.integers(1, 200),
    as_text=st.booleans(),
)
def test_batch_prefilter_equals_summary_of_exact_counts(values, capacity, as_text):
    s = pl.Series("v", values)
    if as_text:
        s = s.cast(pl.String)
    fast = FrequentItems.from_batch(s, capacity)
    exact = FrequentItems.from_counts(value_counts(s), capacity)
    assert fast.error == exact.error
    assert fast.table.sort("value").equals(exact.table.sort("value"))


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=400), min_size=1, max_size=12),
       capacity=st.integers(1, 20))  # fmt: skip
def test_merged_counts_bound_the_truth(parts, capacity):
    summary = None
    for part in parts:
        one = FrequentItems.from_batch(pl.Series("v", part), capacity)
        summary = one if summary is None else summary.merge(one)
    truth = value_counts(pl.Series("v", [v for p in parts for v in p]))
    total = truth["count"].sum()
    assert summary.error <= total / (capacity + 1)
    kept = dict(summary.table.iter_rows())
    for value, count in truth.iter_rows():
        est = kept.get(value, 0)
        assert est <= count <= est + summary.error


@settings(max_examples=100, deadline=None)
@given(hashes=st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**64 - 1, 2**63]), max_size=5000),
       k=st.integers(1, 50))  # fmt: skip
def test_hash_multiplicity_kernel_counts_every_row(hashes, k):
    h = np.array(hashes, dtype=np.uint64)
    out = np.empty(len(h), np.uint32)
    kth = _hashcount.multiplicity(h, out, k)
    distinct, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
    assert out.tolist() == counts[inverse].tolist()
    ordered = np.sort(counts)[::-1]
    assert kth == (int(ordered[k - 1]) if len(ordered) >= k else 0)


def test_hash_multiplicity_kernel_rejects_bad_buffers():
    h = np.arange(10, dtype=np.uint64)
    with pytest.raises(ValueError, match="one uint32 per row"):
        _hashcount.multiplicity(h, np.empty(9, np.uint32), 3)
    with pytest.raises(ValueError, match="uint64"):
        _hashcount.multiplicity(h.astype(np.uint32), np.empty(10, np.uint32), 3)
    with pytest.raises(ValueError, match="at least 1"):
        _hashcount.multiplicity(h, np.empty(10, np.uint32), 0)
