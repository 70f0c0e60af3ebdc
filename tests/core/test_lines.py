"""The line splitter: exact lines, the cap, and chunking invariance."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_wrapper.core.lines import (
    COUNT_BY_TABLE_FROM,
    COUNT_PIECE_BYTES,
    LONG_LINE_BYTES,
    Lines,
    LineSplitter,
    _has_line_over,
    after_newline,
    count_newlines,
    joined,
    total_length,
)


def split_all(data: bytes, cuts: list[int], cap: int) -> tuple[list[bytes], list[int]]:
    splitter = LineSplitter(cap)
    lines: list[bytes] = []
    cut: list[int] = []
    position = 0
    for end in [*sorted(cuts), len(data)]:
        batch = splitter.feed(data[position:end])
        cut.extend(len(lines) + i for i in batch.cut)
        lines.extend(batch.lines)
        position = end
    lines.extend(splitter.flush().lines)
    return lines, cut


def test_plain_lines_and_final_line_without_newline() -> None:
    assert split_all(b"a\nbb\n\nccc", [], 100) == ([b"a", b"bb", b"", b"ccc"], [])


def test_crlf_is_one_line_end() -> None:
    assert split_all(b"one\r\ntwo\r\n", [4], 100) == ([b"one", b"two"], [])


def test_lone_cr_inside_a_line_is_kept() -> None:
    assert split_all(b"50%\r100%\n", [], 100)[0] == [b"50%\r100%"]


def test_long_line_is_cut_at_the_cap_and_marked() -> None:
    lines, cut = split_all(b"x" * 10 + b"\nok\n", [], 4)
    assert lines == [b"xxxx", b"xxxx", b"xx", b"ok"]
    assert cut == [0, 1]


def test_line_of_exactly_k_caps_gives_k_pieces() -> None:
    lines, cut = split_all(b"abcdefgh\n", [8], 4)
    assert lines == [b"abcd", b"efgh"]
    assert cut == [0]


def test_five_megabytes_without_newline_stays_bounded() -> None:
    splitter = LineSplitter(64 * 1024)
    total = 0
    for _ in range(80):
        batch = splitter.feed(b"z" * 65536)
        total += sum(len(line) for line in batch.lines)
        assert splitter.pending_bytes <= 64 * 1024
    total += sum(len(line) for line in splitter.flush().lines)
    assert total == 80 * 65536


def test_empty_feed_changes_nothing() -> None:
    splitter = LineSplitter(10)
    assert splitter.feed(b"").lines == []
    assert splitter.flush().lines == []


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"\n")),
    cap=st.integers(min_value=1, max_value=40),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=12),
)
def test_any_chunking_gives_the_same_lines(data: bytes, cap: int, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    assert split_all(data, cuts, cap) == split_all(data, [], cap)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\xff"]), max_size=80).map(b"".join),
    cap=st.integers(min_value=1, max_value=6),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=8),
)
def test_chunking_invariance_with_dense_line_ends(data: bytes, cap: int, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    assert split_all(data, cuts, cap) == split_all(data, [], cap)


@given(data=st.binary(max_size=200), cap=st.integers(min_value=1, max_value=50))
def test_only_line_ends_are_dropped(data: bytes, cap: int) -> None:
    lines, _ = split_all(data, [], cap)
    assert all(len(line) <= cap for line in lines)
    expected = re.sub(rb"\r?\n", b"", data.removesuffix(b"\r"))
    assert b"".join(lines) == expected


@settings(max_examples=500, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=14), min_size=1, max_size=30),
    tail=st.integers(min_value=0, max_value=14),
    limit=st.integers(min_value=1, max_value=12),
)
def test_line_length_check_agrees_with_measuring_every_line(
    lengths: list[int], tail: int, limit: int
) -> None:
    data = b"".join(b"x" * n + b"\n" for n in lengths) + b"y" * tail
    end = data.rfind(b"\n")
    assert _has_line_over(data, end, limit) == (max(lengths) > limit)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"ab", b"\xff", b"\n", b"\r\n", b"xyz" * 5]), max_size=60).map(
        b"".join
    ),
    cap=st.integers(min_value=1, max_value=20),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8),
)
def test_every_batch_is_the_same_whether_kept_whole_or_split(
    data: bytes, cap: int, cuts: list[int]
) -> None:
    """A batch kept as one buffer (``Lines``) reads exactly as the list it stands for,
    and as what a splitter that splits at once hands."""
    splitter = LineSplitter(cap)
    eager = LineSplitter(cap, keep_whole=False)
    position = 0
    for end in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        batch = splitter.feed(data[position:end])
        split_at_once = eager.feed(data[position:end])
        assert type(split_at_once.lines) is list
        assert split_at_once.lines == batch.lines and split_at_once.cut == batch.cut
        position = end
        whole, after = joined(batch.lines), after_newline(batch.lines)  # before a split
        as_list = list(batch.lines)
        assert len(batch) == len(batch.lines) == len(as_list)
        assert whole == b"\n".join(as_list)
        assert after == b"\n" + whole
        assert after_newline(as_list) == b"\n" + b"\n".join(as_list)
        assert batch.lines == as_list
        assert [batch.lines[i] for i in range(len(as_list))] == as_list
        if isinstance(batch.lines, Lines):
            assert [bytes(view) for view in batch.lines.views()] == as_list
        # Once split, the same again (the buffer is let go for the list).
        assert joined(batch.lines) == b"\n".join(as_list)
        assert after_newline(batch.lines) == b"\n" + b"\n".join(as_list)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"ab", b"\n", b"\r\n", b"xyz" * 5]), max_size=60).map(b"".join),
    cap=st.integers(min_value=1, max_value=20),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
    how=st.lists(st.sampled_from(["one", "parts", "resumed"]), min_size=11, max_size=11),
)
def test_parts_and_resumed_pieces_give_the_same_lines(
    data: bytes, cap: int, cuts: list[int], how: list[str]
) -> None:
    """A piece fed in parts, or again from the start of its unfinished line (as the
    pipeline reads a log back), gives what feeding it plainly gives."""
    plain = LineSplitter(cap)
    other = LineSplitter(cap)
    position = 0
    for end, way in zip([*sorted(c for c in cuts if c <= len(data)), len(data)], how, strict=False):
        piece = data[position:end]
        expected = plain.feed(piece)
        if way == "parts" and len(piece) > 1:
            got = other.feed(piece[:1], piece[1 : len(piece) // 2], piece[len(piece) // 2 :])
        elif way == "resumed" and other.pending_bytes:
            again = data[position - other.pending_bytes : end]
            assert other.resumes(again)
            got = other.feed_resumed(again)
        else:
            got = other.feed(piece)
        assert list(got.lines) == list(expected.lines) and got.cut == expected.cut
        assert other.pending_bytes == plain.pending_bytes
        position = end
    assert plain.flush().lines == other.flush().lines


def test_a_resumed_piece_must_begin_with_the_unfinished_line() -> None:
    splitter = LineSplitter(100)
    splitter.feed(b"one\ntw")
    assert not splitter.resumes(b"xo\n")
    with pytest.raises(ValueError, match="unfinished line"):
        splitter.feed_resumed(b"xo\n")
    assert splitter.feed_resumed(b"two\nthr").lines == [b"two"]
    assert not LineSplitter(100).resumes(b"anything")  # nothing unfinished: nothing to resume


def test_plain_reads_stay_one_buffer() -> None:
    splitter = LineSplitter(10)
    batch = splitter.feed(b"one\ntwo\n\nthree\npart")
    assert isinstance(batch.lines, Lines)
    assert batch.lines.text == b"one\ntwo\n\nthree"
    assert after_newline(batch.lines) == b"\none\ntwo\n\nthree"
    assert len(batch) == 4 and batch.lines[3] == b"three"
    assert splitter.feed(b"ial\n").lines == [b"partial"]
    # What needs work per line goes the long way: a CR to drop, a line to cut.
    assert not isinstance(splitter.feed(b"dos\r\n").lines, Lines)
    assert splitter.feed(b"x" * 25 + b"\n").lines == [b"x" * 10, b"x" * 10, b"x" * 5]
    assert splitter.feed(b"\n").lines == [b""]


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"\n"))))
def test_total_length_is_the_sum_of_the_lines_without_splitting(chunks: list[bytes]) -> None:
    splitter = LineSplitter(max_line_bytes=1 << 20)
    for chunk in chunks:
        lines = splitter.feed(chunk).lines
        before_split = total_length(lines)  # a Lines buffer, not split yet
        assert before_split == sum(len(line) for line in lines) == total_length(lines)
    assert total_length(Lines(b"a\n\nbc", 3)) == 3
    assert total_length(Lines(b"", 0)) == 0


@given(data=st.binary(max_size=3000), skip=st.integers(min_value=0, max_value=40))
def test_count_newlines_counts_what_bytes_count_counts(data: bytes, skip: int) -> None:
    """Whatever the bytes around them (0x0a inside UTF-8 never appears, but binary junk
    does) and wherever a view starts: SIMD code has its edges at 16/32/64 bytes."""
    assert count_newlines(data) == data.count(b"\n")
    assert count_newlines(memoryview(data)[skip:]) == data[skip:].count(b"\n")


def test_count_newlines_on_the_sizes_simd_code_splits_at() -> None:
    sizes = (0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097, 1 << 20)
    # Where the counting changes ways, and where the lookup-table way cuts its pieces.
    edges = (COUNT_BY_TABLE_FROM, COUNT_PIECE_BYTES, 2 * COUNT_PIECE_BYTES)
    for size in (*sizes, *(edge + delta for edge in edges for delta in (-1, 0, 1))):
        assert count_newlines(b"\n" * size) == size
        assert count_newlines(b"x\n" * size) == size
        assert count_newlines(b"x" * size) == 0
        assert count_newlines(bytearray(b"\nx" * size)) == size


# Bytes below 64 become newlines: about a quarter of the bytes, lines of 4 on average.
_DENSE = bytes(0x0A if byte < 64 else byte for byte in range(256))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    size=st.integers(min_value=COUNT_BY_TABLE_FROM - 3, max_value=2 * COUNT_PIECE_BYTES + 99),
    skip=st.integers(min_value=0, max_value=70),
)
def test_count_newlines_by_table_counts_what_bytes_count_counts(
    seed: int, size: int, skip: int
) -> None:
    """Big data, both ways (the lookup table for short lines, StringZilla's count when the
    first 8 KiB are long lines): every byte value around the newlines, any length across
    the table's pieces, a view starting anywhere, dense, sparse and no newlines, and a
    start unlike the rest."""
    base = random.Random(seed).randbytes(size)  # about one byte in 256 a newline
    dense = base.translate(_DENSE)
    long_head = b"x" * LONG_LINE_BYTES * 40 + b"\n"
    for data in (base, dense, base.replace(b"\n", b""), long_head + dense, dense[:9000] + base):
        assert count_newlines(data) == data.count(b"\n")
        assert count_newlines(memoryview(data)[skip:]) == data[skip:].count(b"\n")
        assert count_newlines(bytearray(data)) == data.count(b"\n")
