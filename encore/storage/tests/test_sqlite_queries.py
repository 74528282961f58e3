"""SqliteStore answers queries exactly as DictMemoryStore does, in every index mode."""

from __future__ import annotations

from io import BytesIO

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encore.events.api import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.sqlite_store import SqliteStore

NAMES = st.sampled_from(["a", "A", 'q"', "x y"])

# The edges of Python's ==: bools vs ints vs floats, ints beyond 64 bits and
# beyond every float, signed zeros, infinities, look-alike strings.
TRICKY = [
    None, True, False, 0, 1, -1, 2, 0.0, -0.0, 1.0, 0.5, 2.0,
    2**63 - 1, 2**63, 2**63 + 1, -(2**63), -(2**63) - 1, 2**70, 2**70 + 1, 10**400,
    2.0**63, 2.0**70, float("inf"), float("-inf"),
    "", "1", "a", "A", "caf\u00e9", "\x00", "x y", "\udc80",
]

SCALARS = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=False, width=16),
)

# Metadata is JSON, so stored containers are lists and str-keyed dicts.  NaN
# is left out: Python's == is not even reflexive for it.
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["k", "K", "j"]), inner,
                                            max_size=3)),
    max_leaves=6,
)

METADATA = st.dictionaries(NAMES, VALUES, max_size=4)

# Queries may also use types never stored (tuples, bytes, NaN).
QUERY_VALUES = st.one_of(
    VALUES,
    st.tuples(SCALARS, SCALARS),
    st.just(float("nan")),
    st.just(b"a"),
)


def _twins(value):
    """Values equal or nearly equal to *value* in Python: the edges of ``==``."""
    yield value
    if isinstance(value, bool):
        yield int(value)
        yield float(value)
    elif isinstance(value, int):
        yield value + 1
        yield True if value == 1 else value
        try:
            yield float(value)
        except OverflowError:
            pass
    elif isinstance(value, float):
        if value.is_integer():
            yield int(value)
            yield int(value) + 1
    elif isinstance(value, list):
        yield tuple(value)
        yield [next(iter(_twins(item)), item) for item in value]
        yield [list(_twins(item))[-1] for item in value]
    elif isinstance(value, dict):
        yield {k: list(_twins(v))[-1] for k, v in value.items()}


def _stores():
    reference = DictMemoryStore(EventManager())
    stores = [
        SqliteStore(index="dynamic", event_manager=EventManager()),
        SqliteStore(index="static", index_columns=["a", 'q"', "x y"],
                    event_manager=EventManager()),
        SqliteStore(index=None, event_manager=EventManager()),
    ]
    for store in [reference, *stores]:
        store.connect()
    return reference, stores


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(METADATA, min_size=1, max_size=8),
    updates=st.lists(st.tuples(st.integers(0, 7), METADATA), max_size=3),
    queries=st.lists(st.dictionaries(NAMES, QUERY_VALUES, max_size=2), min_size=1,
                     max_size=4),
    picks=st.lists(st.tuples(st.integers(0, 7), NAMES), max_size=4),
)
def test_query_results_equal_dict_memory_store(rows, updates, queries, picks):
    reference, stores = _stores()
    for store in [reference, *stores]:
        for i, metadata in enumerate(rows):
            store.set(f"k{i}", (BytesIO(b""), metadata))
        for i, metadata in updates:
            if i < len(rows):
                store.update_metadata(f"k{i}", metadata)
    # Also query for values that are certainly stored.
    queries = list(queries)
    for i, name in picks:
        if i < len(rows):
            metadata = reference.get_metadata(f"k{i}")
            if name in metadata:
                queries.extend({name: twin} for twin in _twins(metadata[name]))
    for kwargs in queries:
        expected = sorted(reference.query_keys(**kwargs))
        expected_items = sorted(reference.query(**kwargs))
        for store in stores:
            assert sorted(store.query_keys(**kwargs)) == expected, (store.index, kwargs)
            assert sorted(store.query(**kwargs)) == expected_items, (store.index, kwargs)
    for store in stores:
        store.disconnect()


CONTAINERS = [[], [1], [1.0], [True], [2**70], [2.0**70], [2**70 + 1], ["a", None], {},
              {"k": 1}, {"k": 1.0, "j": [0]}, {"j": [0.0], "k": True}, {"k": [2**63]},
              [[1, 2], {"k": "x"}], [float("inf")]]


def test_every_tricky_pair_matches_like_python():
    """Exhaustive over the edge values: every stored value against every query value."""
    stored = TRICKY + CONTAINERS
    queries = [twin for value in stored for twin in _twins(value)]
    queries += [float("nan"), b"a", (1, 2), [float("nan")]]
    reference, stores = _stores()
    for store in [reference, *stores]:
        for i, value in enumerate(stored):
            store.set(f"k{i}", (BytesIO(b""), {"a": value}))
    for value in queries:
        expected = sorted(reference.query_keys(a=value))
        for store in stores:
            assert sorted(store.query_keys(a=value)) == expected, (store.index, value)
            assert sorted(k for k, _ in store.query(a=value)) == expected, (store.index, value)
    for store in stores:
        store.disconnect()
