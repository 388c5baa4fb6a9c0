"""The error-text index behind ``dlq list --grep``: it names every letter a full scan finds,
stays exact through park, edit, drop, purge and import, and can be built for an old store."""

from __future__ import annotations

import dataclasses
import random
import string
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cartsync.worker import keys
from cartsync.worker.cli import cli
from cartsync.worker.deadletters import AuditNote, Filters
from cartsync.worker.deadletters.filters import grep_matches
from cartsync.worker.deadletters.textindex import NUMBER, query, signature, terms_of
from tests.worker.dlq_support import TOTALS_409, make_letter

#: Characters error texts are drawn from: the ones numbers are made of, letters whose case
#: folding is unusual, and the placeholder the index masks numbers with.
ALPHABET = "0123456789.,.,  aAbBzZ:'()-+ßẞİıΣσς\x01é"

texts = st.text(alphabet=ALPHABET, max_size=40)


def could_match(needle: str, text: str) -> bool:
    """What the index says about one text: may it hold ``needle``?"""
    wanted = query(needle)
    numbers = NUMBER.findall(text.casefold())
    return (
        wanted.admits(signature(text))
        and wanted.exact <= set(numbers)
        and all(any(n.startswith(p) for n in numbers) for p in wanted.prefixes)
        and all(any(i in n for n in numbers) for i in wanted.infixes)
    )


@settings(max_examples=3000, deadline=None)
@given(text=texts, data=st.data())
def test_the_index_never_rules_out_a_text_that_holds_the_needle(text, data):
    """Any piece of an error text (in any case) is admitted by the text's signature and
    numbers: the index's candidates are a superset of the matches."""
    folded = text.casefold()
    start = data.draw(st.integers(0, len(folded)))
    end = data.draw(st.integers(start, len(folded)))
    needle = folded[start:end]
    if data.draw(st.booleans()):
        needle = needle.upper()
    assume(needle.casefold() in folded)
    assert could_match(needle, text)


@settings(max_examples=500, deadline=None)
@given(text=texts, needle=texts)
def test_any_needle_that_matches_is_admitted(text, needle):
    """Whatever the needle, if the scan's rule finds it in the text, the index admits it."""
    if needle.casefold() in text.casefold():
        assert could_match(needle, text)


def test_numbers_narrow_the_search():
    """A number held whole, one at the end of the text and one at the start become exact,
    prefix and inner-digit constraints."""
    wanted = query("up to 5055 (200")
    assert wanted.exact == {"5055"}
    assert wanted.prefixes == {"200"}
    assert not wanted.infixes
    assert query("55 (200").infixes == {"55"}
    assert not could_match("The diff is 43.", TOTALS_409)
    assert could_match("THE DIFF IS 4", TOTALS_409)


# -- against Redis ---------------------------------------------------------------------------

#: seQura-like texts: numbers in them make letters rare or common.
TEMPLATES = (
    "Invalid data: items add up to {a} but order_total_with_tax is {b}. The diff is {d}.",
    "exceeds the original total {a},{d} of the order",
    "Order not found",
    "Ação inválida: {a}.{d} ÉLAN",
    "Access denied",
)


def random_errors(rng: random.Random) -> list[str]:
    return [
        rng.choice(TEMPLATES).format(
            a=rng.randrange(1, 300), b=rng.randrange(1, 300), d=rng.randrange(0, 20)
        )
        for _ in range(rng.choice((0, 1, 1, 1, 2)))
    ]


def random_needle(rng: random.Random, letters: list[Any]) -> str:
    kind = rng.random()
    if kind < 0.6 and letters:
        source = rng.choice(letters).errors or ["x"]
        text: str = rng.choice(source)
        start = rng.randrange(len(text))
        needle = text[start : start + rng.randrange(1, 20)]
        return needle.upper() if rng.random() < 0.3 else needle
    if kind < 0.8:
        return str(rng.randrange(0, 400))
    return "".join(
        rng.choice(string.ascii_letters + "0123456789 .,") for _ in range(rng.randrange(1, 6))
    )


def expected_ids(letters, filters):
    return sorted((le.id for le in letters if filters.matches(le)), reverse=True)


def clear(store):
    for key in store.client.scan_iter(keys.pattern(store.base)):
        store.client.delete(key)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_grep_through_the_index_finds_what_a_full_scan_finds(store, seed):
    """Over random letters and random texts (with other filters and paging), ``grep``
    answered from the index lists exactly the letters a full scan lists, in the same order."""
    clear(store)
    rng = random.Random(seed)
    letters = [
        make_letter(
            merchant=rng.choice(("shop1", "shop2")),
            reason=rng.choice(("conflict", "rejected")),
            errors=random_errors(rng),
            dead_at=1.8e9 - rng.randrange(0, 10**6),
        )
        for _ in range(rng.randrange(1, 60))
    ]
    store.park_many(letters)
    store.grep_candidates = 10**9  # every search from the index
    for _ in range(15):
        needle = random_needle(rng, letters)
        filters = Filters(
            grep=needle,
            merchant=rng.choice((None, "shop1")),
            reason=rng.choice((None, None, "conflict")),
            since=rng.choice((None, 1.8e9 - 5e5)),
        )
        want = expected_ids(letters, filters)
        from_index = [s.letter.id for s in store.scan(filters)]
        assert from_index == want, needle
        store.client.delete(store.names.text_ready)  # the old way: a full scan
        assert [s.letter.id for s in store.scan(filters)] == want, needle
        store.client.set(store.names.text_ready, "1")
        # Paging: pages of 7 put together are the whole list.
        paged, cursor = [], None
        while True:
            page = store.page(filters, limit=7, cursor=cursor)
            paged += [s.letter.id for s in page.letters]
            if page.cursor is None:
                break
            cursor = page.cursor
        assert paged == want
        assert store.count(filters) == len(want)


def index_contents(store):
    """The text index as stored: term set key -> ids, and the two vocabularies."""
    client, names = store.client, store.names
    sets = {
        key.decode(): {m.decode() for m in client.smembers(key)}
        for key in client.scan_iter(f"{keys.dlq_text(store.names.prefix)}:*:*")
        if key.decode() not in (names.text_signatures, names.text_numbers)
    }
    sigs = {k.decode(): v.decode() for k, v in client.hgetall(names.text_signatures).items()}
    nums = {m.decode() for m in client.zrange(names.text_numbers, 0, -1)}
    return sets, sigs, nums


def expected_contents(store, letters):
    sets: dict[str, set[str]] = {}
    sigs: dict[str, str] = {}
    nums: set[str] = set()
    for letter in letters:
        for term in terms_of(letter.errors):
            sets.setdefault(store.names.term_key(term), set()).add(letter.id)
            if term.kind == "s":
                sigs[term.name] = term.text
            else:
                nums.add(term.text)
    return sets, sigs, nums


def present_letters(store):
    return [s.letter for s in store.scan(Filters())]


def test_the_index_stays_exact_through_edits_drops_purges_and_imports(store, env, tmp_path):
    """After parking, an edit that changes the error texts, a drop, a purge and an import,
    the index lists exactly the letters present under exactly their terms, and nothing
    else (no term of a letter that left)."""
    old = [make_letter(errors=[f"The diff is {n}."], dead_at=1.7e9 + n) for n in range(5)]
    new = [make_letter(errors=[TOTALS_409, "Order not found"]) for _ in range(5)]
    store.park_many([*old, *new])
    assert index_contents(store) == expected_contents(store, present_letters(store))

    stored = store.load(new[0].id)
    changed = dataclasses.replace(stored.letter, errors=["exceeds the original total 125"])
    assert store.replace(stored, changed, audit=AuditNote("edit", "t", "r")) == "replaced"
    assert store.remove(store.load(new[1].id)) == "removed"
    assert index_contents(store) == expected_contents(store, present_letters(store))

    runner = CliRunner(env=env)
    out = tmp_path / "x.jsonl"
    assert runner.invoke(cli, ["dlq", "export", "-o", str(out)]).exit_code == 0
    result = runner.invoke(cli, ["dlq", "purge", "--older-than", "1d", "--yes"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["dlq", "drop", new[2].id, "--yes"])
    assert result.exit_code == 0, result.output
    assert index_contents(store) == expected_contents(store, present_letters(store))
    result = runner.invoke(cli, ["dlq", "import", str(out)])
    assert result.exit_code == 0, result.output
    assert index_contents(store) == expected_contents(store, present_letters(store))
    assert len(present_letters(store)) == 4 + 5  # two kept, the purged five and a drop back

    result = runner.invoke(cli, ["dlq", "drop", "--all", "--yes"])
    assert result.exit_code == 0, result.output
    assert index_contents(store) == ({}, {}, set())


def test_an_old_store_greps_by_scanning_until_reindexed(store, env):
    """A store parked before the index existed (no index keys) still greps right, by
    scanning, and says how to build the index; ``dlq reindex`` builds it exactly, and
    ``grep`` then answers from it."""
    letters = [make_letter(errors=[f"The diff is {n}. Order {n}"]) for n in range(30)]
    store.park_many(letters)
    for key in store.client.scan_iter(keys.pattern(keys.dlq_text(store.names.prefix))):
        store.client.delete(key)
    assert store.grep_candidates_of("diff is 7.") is None
    runner = CliRunner(env=env)
    result = runner.invoke(cli, ["dlq", "list", "--grep", "diff is 7.", "--json"])
    assert result.exit_code == 0, result.output
    assert "cartsync dlq reindex" in result.stderr
    assert letters[7].id in result.stdout
    assert letters[17].id not in result.stdout

    result = runner.invoke(cli, ["dlq", "reindex"])
    assert result.exit_code == 0, result.output
    assert "Indexed the error texts of 30 letter(s)" in result.output
    assert index_contents(store) == expected_contents(store, present_letters(store))
    assert store.grep_candidates_of("diff is 7.") == {letters[7].id}
    result = runner.invoke(cli, ["dlq", "list", "--grep", "DIFF IS 7.", "--json"])
    assert "reindex" not in result.stderr
    assert letters[7].id in result.stdout
    assert letters[17].id not in result.stdout


def test_a_new_store_is_indexed_from_its_first_letter(store):
    """Parking the first letter of an empty store marks its index complete, and a text no
    letter holds answers from the index with nothing to read."""
    assert not store.text_index_ready()
    store.park(make_letter())
    assert store.text_index_ready()
    assert store.grep_candidates_of("no such words") == set()
    assert store.grep_candidates_of("add up to 5055 ") == {
        s.letter.id for s in store.scan(Filters())
    }


@pytest.mark.parametrize("needle", ["5055", "to 50", "diff is 42.", "s 42", "order_total"])
def test_numbers_and_words_answer_from_the_index(store, needle):
    """Whole numbers, partial ones at either end and plain words find the letter through
    the index and leave out one whose numbers differ."""
    hit = make_letter()
    miss = make_letter(errors=[TOTALS_409.replace("5055", "9999").replace("42", "13")])
    store.park_many([hit, miss])
    candidates = store.grep_candidates_of(needle)
    assert candidates is not None
    assert hit.id in candidates
    want = sorted((le.id for le in (hit, miss) if grep_matches(needle, le)), reverse=True)
    assert [s.letter.id for s in store.scan(Filters(grep=needle))] == want
