"""coredump.memo: answers kept per owner within a limit, and rebuilt values kept by their data."""

from coredump.memo import OwnerMemo, by_value


class _Owner:
    pass


def test_answers_are_kept_per_owner_and_past_the_limit_computed_afresh():
    memo, calls = OwnerMemo(2), []

    def answer(owner, key):
        return memo.get(owner, key, lambda: calls.append((owner, key)) or (id(owner), key))

    a, b = _Owner(), _Owner()
    assert answer(a, 1) == (id(a), 1) and answer(a, 1) == (id(a), 1)
    assert answer(b, 1) == (id(b), 1)  # another owner: its own answer
    answer(a, 2), answer(a, 3), answer(a, 3)  # a's third key is past the limit: not kept
    assert calls == [(a, 1), (b, 1), (a, 2), (a, 3), (a, 3)]
    assert sorted(memo.table(a)) == [1, 2]


def test_an_owner_without_weak_references_is_answered_without_a_memo():
    memo, calls = OwnerMemo(8), []
    for _ in range(2):
        assert memo.get(42, "k", lambda: calls.append(1) or "v") == "v"
    assert memo.table(42) is None and calls == [1, 1]


def test_values_are_rebuilt_once_per_data_and_unhashable_data_afresh():
    calls = []
    rebuilt = by_value(lambda data: calls.append(data) or ("built", tuple(data)))
    assert rebuilt((1, 2)) == rebuilt((1, 2)) == ("built", (1, 2))
    assert rebuilt([1, 2]) == rebuilt([1, 2]) == ("built", (1, 2))
    assert calls == [(1, 2), [1, 2], [1, 2]]
