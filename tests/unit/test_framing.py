"""The framing decoder against every rule of its brief, in h11's style.

Every stream is decoded three ways (whole, one byte at a time, in odd-sized
chunks) and must give the same events each way: the decoder may only decide
what the bytes already received make certain. The fuzz tests check that any
input ends in ``END_OF_STREAM`` without an exception, whatever the chunking.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable, Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.core.errors import ErrorCode
from bourse.protocol.events import (
    END_OF_STREAM,
    NEED_DATA,
    DecoderEvent,
    Frame,
    RequestError,
    Signal,
)
from bourse.protocol.framing import DEFAULT_MAX_REQUEST_SIZE, FrameDecoder
from tests.unit.chunkers import Chunker, byte_by_byte, odd_chunks, whole

CHUNKERS = pytest.mark.parametrize("chunker", [whole, byte_by_byte, odd_chunks])


def drain(decoder: FrameDecoder) -> Iterator[DecoderEvent]:
    """Every event up to and including the next NEED_DATA or END_OF_STREAM."""
    while True:
        event = decoder.next_event()
        yield event
        if isinstance(event, Signal):
            return


def decode(
    chunks: Iterable[bytes], max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
) -> list[DecoderEvent]:
    """Feed the chunks then EOF; the events without NEED_DATA, ending at END_OF_STREAM."""
    decoder = FrameDecoder(max_request_size)
    events: list[DecoderEvent] = []
    for chunk in [*chunks, None]:
        if chunk is None:
            decoder.feed_eof()
        else:
            decoder.feed(chunk)
        for event in drain(decoder):
            if event is END_OF_STREAM:
                return [*events, END_OF_STREAM]
            if event is not NEED_DATA:
                events.append(event)
    raise AssertionError("the decoder did not end the stream after EOF")


def decode_open(chunks: Iterable[bytes]) -> list[DecoderEvent]:
    """Feed the chunks with no EOF; the events without NEED_DATA, which must come last."""
    decoder = FrameDecoder()
    events: list[DecoderEvent] = []
    for chunk in chunks:
        decoder.feed(chunk)
        events.extend(drain(decoder))
    assert events[-1] is NEED_DATA
    return [event for event in events if event is not NEED_DATA]


def frames(*bodies: bytes) -> list[DecoderEvent]:
    return [*(Frame(body) for body in bodies), END_OF_STREAM]


def length_line(body: bytes, newline: bytes = b"\n") -> bytes:
    return str(len(body)).encode() + newline + body


def binary(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + b"\n" + body


def bare(body: bytes) -> bytes:
    return body


def crlf_length_line(body: bytes) -> bytes:
    return length_line(body, b"\r\n")


FRAMINGS = pytest.mark.parametrize("framing", [length_line, crlf_length_line, binary, bare])

ORDER = b'<transactions id="1">\n  <order sym="SPY" amount="100" limit="125"/>\n</transactions>'
CREATE = b'<create><account id="7" balance="1000"/></create>'


def assert_fatal(event: DecoderEvent, code: ErrorCode) -> None:
    assert isinstance(event, RequestError), event
    assert event.code is code
    assert event.fatal


def assert_refused(event: DecoderEvent, code: ErrorCode) -> None:
    assert isinstance(event, RequestError), event
    assert event.code is code
    assert not event.fatal


# --- each framing on its own and followed by more -------------------------


@FRAMINGS
@CHUNKERS
def test_one_request_in_each_framing(framing: Callable[[bytes], bytes], chunker: Chunker) -> None:
    assert decode(chunker(framing(ORDER))) == frames(ORDER)


@FRAMINGS
@CHUNKERS
def test_the_next_request_right_behind(framing: Callable[[bytes], bytes], chunker: Chunker) -> None:
    stream = framing(ORDER) + framing(CREATE)
    assert decode(chunker(stream)) == frames(ORDER, CREATE)


@FRAMINGS
def test_a_complete_request_is_returned_before_more_bytes_or_eof(
    framing: Callable[[bytes], bytes],
) -> None:
    decoder = FrameDecoder()
    decoder.feed(framing(CREATE))
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]
    assert not decoder.in_request


@CHUNKERS
def test_framings_mixed_on_one_stream(chunker: Chunker) -> None:
    stream = (
        length_line(ORDER)
        + binary(CREATE)
        + bare(ORDER)
        + b"\n"
        + crlf_length_line(CREATE)
        + b"\r\n"
        + binary(ORDER)
        + bare(CREATE)
        + b"\n"
    )
    assert decode(chunker(stream)) == frames(ORDER, CREATE, ORDER, CREATE, ORDER, CREATE)


# --- length line or binary length: the overlaps ----------------------------


@CHUNKERS
def test_binary_length_that_reads_as_digit_and_newline_is_binary(chunker: Chunker) -> None:
    body = b"<a>" + b"x" * (2609 - 7) + b"</a>"
    stream = binary(body)
    assert stream[:5] == b"1\n\x00\x00\n"
    assert decode(chunker(stream + binary(CREATE))) == frames(body, CREATE)


@CHUNKERS
def test_binary_length_whose_first_byte_is_a_less_than_sign(chunker: Chunker) -> None:
    body = b"<a>" + b"x" * (60 - 7) + b"</a>"
    stream = binary(body)
    assert stream[:5] == b"<\x00\x00\x00\n"
    assert decode(chunker(stream)) == frames(body)


@pytest.mark.parametrize("length", [9, 10, 13, 32])
@CHUNKERS
def test_binary_length_whose_first_byte_is_whitespace(length: int, chunker: Chunker) -> None:
    body = b"<a>" + b"x" * (length - 7) + b"</a>"
    stream = length_line(CREATE) + b"\n" + binary(body) + b" "
    assert decode(chunker(stream)) == frames(CREATE, body)


@CHUNKERS
def test_length_line_followed_by_xml_start_wins_over_binary(chunker: Chunker) -> None:
    # Also a binary length of 0x3C0A31 bytes: the length line takes precedence.
    assert decode(chunker(b"2\n<\x00\n")) == frames(b"<\x00")


@CHUNKERS
def test_length_line_whose_body_starts_with_whitespace(chunker: Chunker) -> None:
    body = b"\n  " + CREATE
    assert decode(chunker(length_line(body))) == frames(body)


@CHUNKERS
def test_length_line_not_followed_by_xml_is_still_framed(chunker: Chunker) -> None:
    # No binary reading fits (byte 4 is not a newline): the body goes to the XML reader.
    assert decode(chunker(b"5\nhello" + length_line(CREATE))) == frames(b"hello", CREATE)


@CHUNKERS
def test_binary_length_over_the_limit_is_fatal(chunker: Chunker) -> None:
    header = (DEFAULT_MAX_REQUEST_SIZE + 1).to_bytes(4, "little") + b"\n"
    events = decode(chunker(header + b"<a/>"))
    assert_fatal(events[0], ErrorCode.REQUEST_TOO_LARGE)
    assert events[1:] == [END_OF_STREAM]


@CHUNKERS
def test_length_line_wins_over_an_impossible_binary_length(chunker: Chunker) -> None:
    # "1234\n" is also a binary length far over the limit; the body does not
    # start like XML, yet the only possible reading is the length line.
    body = b"x" * 1234
    assert decode(chunker(b"1234\n" + body)) == frames(body)


@CHUNKERS
def test_oversized_binary_reading_of_bare_xml_is_ignored(chunker: Chunker) -> None:
    # "<ab>" then a newline is also a binary length far over the limit.
    document = b"<ab>\n</ab>"
    assert decode(chunker(document)) == frames(document)


@pytest.mark.parametrize("digits", [b"1000000000000\n", b"0000000001\n", b"9999999999<"])
@CHUNKERS
def test_ten_or_more_digits_are_fatal_too_large(digits: bytes, chunker: Chunker) -> None:
    events = decode(chunker(digits + CREATE))
    assert_fatal(events[0], ErrorCode.REQUEST_TOO_LARGE)
    assert events[1:] == [END_OF_STREAM]


@pytest.mark.parametrize(
    "stream", [b"-5\n<a/>", b"abc\n<a/>", b"12x<a/>", b"\x01\x02\x03\x04\x05<a/>"]
)
@CHUNKERS
def test_unrecognisable_start_is_fatal(stream: bytes, chunker: Chunker) -> None:
    events = decode(chunker(stream))
    assert_fatal(events[0], ErrorCode.BAD_FRAMING)
    assert events[1:] == [END_OF_STREAM]


@pytest.mark.parametrize("empty", [b"0\n", b"0\r\n", b"\x00\x00\x00\x00\n"])
@CHUNKERS
def test_empty_request_is_refused_and_the_next_one_decodes(empty: bytes, chunker: Chunker) -> None:
    events = decode(chunker(empty + CREATE + empty + binary(ORDER)))
    assert_refused(events[0], ErrorCode.BAD_FRAMING)
    assert events[1] == Frame(CREATE)
    assert_refused(events[2], ErrorCode.BAD_FRAMING)
    assert events[3:] == frames(ORDER)


@CHUNKERS
def test_empty_length_line_then_a_one_digit_length_line(chunker: Chunker) -> None:
    # "0\n4\n<a" fits no binary length (byte 4 is not a newline): two length lines.
    events = decode(chunker(b"0\n4\n<a/>"))
    assert_refused(events[0], ErrorCode.BAD_FRAMING)
    assert events[1:] == frames(b"<a/>")


@CHUNKERS
def test_empty_length_line_at_end_of_stream(chunker: Chunker) -> None:
    events = decode(chunker(length_line(CREATE) + b"0\n"))
    assert events[0] == Frame(CREATE)
    assert_refused(events[1], ErrorCode.BAD_FRAMING)
    assert events[2:] == [END_OF_STREAM]


@pytest.mark.parametrize("zero", [b"0\n", b"0\r\n", b"00\n", b"000000000\n"])
@pytest.mark.parametrize(
    "before",
    [b"", b"\n", b"\r\n", b"\n" * 6, length_line(CREATE), bare(CREATE), bare(CREATE) + b"\n"],
)
@pytest.mark.parametrize("chunker", [whole, byte_by_byte])
def test_empty_length_line_is_answered_without_waiting_for_more(
    zero: bytes, before: bytes, chunker: Chunker
) -> None:
    # "0\n" and the three bytes after it could be a binary length: it is not waited for.
    events = decode_open(chunker(before + zero))
    assert events[:-1] == ([Frame(CREATE)] if CREATE in before else [])
    assert events[-1] == RequestError(ErrorCode.BAD_FRAMING, "empty request")


@pytest.mark.parametrize(
    "length",
    [2608, 2608 + 65536 * 255, 658736, 667657, 667658, 667661, 667680, 667696],
)
def test_binary_lengths_spelling_an_empty_length_line_are_read_as_one(length: int) -> None:
    # The exceptions docs/protocol.md lists: a zero length line, maybe behind whitespace.
    decoder = FrameDecoder()
    decoder.feed(length.to_bytes(4, "little") + b"\n<")
    event = decoder.next_event()
    assert isinstance(event, RequestError)
    assert event.code is ErrorCode.BAD_FRAMING
    assert event.detail in {"empty request", "whitespace before the length line's digits"}


@CHUNKERS
def test_binary_length_spelling_an_empty_length_line_is_read_as_one(chunker: Chunker) -> None:
    # 2608 is "0\n\x00\x00\n"; one more byte (a newline after the root) frames it.
    body = b"<a>" + b"x" * (2608 - 7) + b"</a>"
    assert binary(body)[:2] == b"0\n"
    events = decode(chunker(binary(body)))
    assert_refused(events[0], ErrorCode.BAD_FRAMING)
    assert_fatal(events[1], ErrorCode.BAD_FRAMING)
    assert decode(chunker(binary(body + b"\n"))) == frames(body + b"\n")


# --- a length line starts a line ---------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        b" " + length_line(CREATE),
        b"\t" + length_line(CREATE),
        b"\r" + length_line(CREATE),
        b"\n \t" + length_line(CREATE),
        b" 0\n",
        b"\r\n\t0\r\n",
        b" 1234\n" + b"x" * 1234,
    ],
)
@CHUNKERS
def test_whitespace_right_before_a_length_line_is_fatal(stream: bytes, chunker: Chunker) -> None:
    events = decode(chunker(stream))
    assert_fatal(events[0], ErrorCode.BAD_FRAMING)
    assert isinstance(events[0], RequestError)
    assert events[0].detail == "whitespace before the length line's digits"
    assert events[1:] == [END_OF_STREAM]


@FRAMINGS
@CHUNKERS
def test_space_between_a_request_and_a_length_line_is_fatal(
    framing: Callable[[bytes], bytes], chunker: Chunker
) -> None:
    events = decode(chunker(framing(CREATE) + b" " + length_line(ORDER)))
    assert events[0] == Frame(CREATE)
    assert_fatal(events[1], ErrorCode.BAD_FRAMING)
    assert events[2:] == [END_OF_STREAM]


@pytest.mark.parametrize("before", [b"\n", b"\r\n", b" \n", b"\t \r\n", b"\n\n\n"])
@FRAMINGS
@CHUNKERS
def test_length_line_after_a_line_feed_is_framed(
    before: bytes, framing: Callable[[bytes], bytes], chunker: Chunker
) -> None:
    stream = framing(CREATE) + before + length_line(ORDER) + before + crlf_length_line(CREATE)
    assert decode(chunker(stream)) == frames(CREATE, ORDER, CREATE)


@pytest.mark.parametrize("length", [49, 2609])
@CHUNKERS
def test_binary_length_spelling_digits_may_follow_a_space(length: int, chunker: Chunker) -> None:
    body = b"<a>" + b"x" * (length - 7) + b"</a>"
    assert binary(body)[:1] == b"1"
    assert decode(chunker(bare(CREATE) + b" " + binary(body))) == frames(CREATE, body)


# --- whitespace between requests ---------------------------------------------


@CHUNKERS
def test_whitespace_between_and_after_requests_is_skipped(chunker: Chunker) -> None:
    stream = b"\n" + bare(CREATE) + b"\r\n \t" + bare(ORDER) + b"\n\n" + length_line(CREATE) + b"\n"
    assert decode(chunker(stream)) == frames(CREATE, ORDER, CREATE)


def test_trailing_newline_is_not_taken_for_part_of_a_request() -> None:
    decoder = FrameDecoder()
    decoder.feed(CREATE + b"\n")
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]
    assert not decoder.in_request
    decoder.feed_eof()
    assert decoder.next_event() is END_OF_STREAM


def test_whitespace_run_is_skipped_in_bulk() -> None:
    assert decode([b" " * 1_000_000 + CREATE]) == frames(CREATE)


@pytest.mark.parametrize("limit", [64, 0x10000000])
@CHUNKERS
def test_whitespace_run_ending_in_a_binary_length(limit: int, chunker: Chunker) -> None:
    body = b"<a>" + b"x" * 3 + b"</a>"
    # No five bytes before the header read as a binary length within either limit.
    stream = b" \r\n  \t " + binary(body)
    assert stream[7:12] == b"\n\x00\x00\x00\n"
    assert decode(chunker(stream), max_request_size=limit) == frames(body)


# --- bare XML ----------------------------------------------------------------

BARE_DOCUMENTS = [
    b"<a/>",
    b"<a />",
    b'<a x="1"/>',
    b'<a b=">"/>',
    b"<a b='/>'>text</a>",
    b'<a b="it\'s" c=\'say "hi"\'>t</a>',
    b"<a>1 &gt; 0 > -1</a>",
    b"<a></a >",
    b"<a><!-- <b> </a> --></a>",
    b"<!-- before --><a/>",
    b"<a><![CDATA[</a> <b> ]]></a>",
    b'<?xml version="1.0"?><a/>',
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- c -->\n<a/>',
    b"<a><?pi </a> ?></a>",
    b"<a><a><a/></a><a></a></a>",
    b"\xef\xbb\xbf<a/>",
    b'\xef\xbb\xbf<?xml version="1.0"?>\r\n<a/>',
    ORDER,
]


@pytest.mark.parametrize("document", BARE_DOCUMENTS)
@CHUNKERS
def test_bare_document_ends_where_its_root_closes(document: bytes, chunker: Chunker) -> None:
    assert decode(chunker(document + b"<next/>")) == frames(document, b"<next/>")


@CHUNKERS
def test_whitespace_before_a_bare_document_is_dropped(chunker: Chunker) -> None:
    assert decode(chunker(b" \r\n\t" + CREATE)) == frames(CREATE)


# --- after a bare document: its trailing comments and instructions ------------

TRAILING_MARKUP = [
    b"<!-- c -->",
    b"<!---->",
    b"<?pi x?>",
    b"<?p?>",
    b"<!-- <a/> 0\n 5\n -->",
    b"<?pi <a/> ?>",
    b"<?xml-stylesheet href='a'?>",
    b"\n<!-- a -->\r\n<?b?> \n",
]


@pytest.mark.parametrize("trailing", TRAILING_MARKUP)
@FRAMINGS
@CHUNKERS
def test_comments_and_instructions_after_a_bare_root_belong_to_it(
    trailing: bytes, framing: Callable[[bytes], bytes], chunker: Chunker
) -> None:
    stream = bare(CREATE) + trailing + framing(ORDER)
    assert decode(chunker(stream)) == frames(CREATE, ORDER)


@pytest.mark.parametrize("trailing", TRAILING_MARKUP)
def test_trailing_markup_is_not_a_request_in_progress(trailing: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(CREATE + trailing)
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]
    assert not decoder.in_request
    decoder.feed_eof()
    assert decoder.next_event() is END_OF_STREAM


@pytest.mark.parametrize("unfinished", [b"<!-- c", b"<!-- c --", b"<?pi x", b"<?pi x?", b"<!-"])
def test_unfinished_trailing_markup_is_in_progress_and_cut_by_eof(unfinished: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(CREATE + unfinished)
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]
    assert decoder.in_request
    decoder.feed_eof()
    assert_fatal(decoder.next_event(), ErrorCode.BAD_FRAMING)


def test_long_trailing_comment_keeps_memory_small() -> None:
    chunk = b"-" * 65536
    decoder = FrameDecoder()
    decoder.feed(CREATE + b"<!--")
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]
    tracemalloc.start()
    try:
        for _ in range(200):
            decoder.feed(chunk)
            assert decoder.next_event() is NEED_DATA
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    decoder.feed(b">" + CREATE)
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]


@pytest.mark.parametrize(
    "document", [b'<?xml version="1.0"?><a/>', b"<?xml\n version='1.0'?>\n<a/>", b"<!-- c --><a/>"]
)
@CHUNKERS
def test_after_a_length_framed_request_a_prolog_starts_the_next_document(
    document: bytes, chunker: Chunker
) -> None:
    assert decode(chunker(length_line(CREATE) + document)) == frames(CREATE, document)


@CHUNKERS
def test_an_xml_declaration_after_a_bare_root_starts_the_next_document(chunker: Chunker) -> None:
    document = b'<?xml version="1.0"?><!-- c --><a/>'
    assert decode(chunker(bare(CREATE) + b"\n" + document)) == frames(CREATE, document)


@CHUNKERS
def test_a_binary_length_after_a_bare_root_wins_over_an_instruction(chunker: Chunker) -> None:
    body = b"<a>" + b"x" * (16188 - 7) + b"</a>"
    assert binary(body)[:2] == b"<?"
    assert decode(chunker(bare(CREATE) + binary(body))) == frames(CREATE, body)


@pytest.mark.parametrize("declaration", [b"<!DOCTYPE a>", b"<!ENTITY x 'y'>"])
@CHUNKERS
def test_a_declaration_after_a_bare_root_is_forbidden(declaration: bytes, chunker: Chunker) -> None:
    events = decode(chunker(bare(CREATE) + declaration + b"<a/>"))
    assert events[0] == Frame(CREATE)
    assert_fatal(events[1], ErrorCode.FORBIDDEN_XML)
    assert events[2:] == [END_OF_STREAM]


@pytest.mark.parametrize(
    "document", [b"<!DOCTYPE a><a/>", b"<a><!DOCTYPE a></a>", b'<!ENTITY x "y"><a/>']
)
@CHUNKERS
def test_declarations_are_forbidden_in_bare_xml(document: bytes, chunker: Chunker) -> None:
    events = decode(chunker(document))
    assert_fatal(events[0], ErrorCode.FORBIDDEN_XML)
    assert events[1:] == [END_OF_STREAM]


@pytest.mark.parametrize(
    "document",
    [b"\xef\xbb\xbfhello<a/>", b"<?xml?>junk<a/>", b"</a><a/>", b"\xef\xbb\x00<a/>"],
)
@CHUNKERS
def test_bare_xml_that_cannot_be_framed_is_fatal(document: bytes, chunker: Chunker) -> None:
    events = decode(chunker(document))
    assert_fatal(events[0], ErrorCode.BAD_FRAMING)
    assert events[1:] == [END_OF_STREAM]


@CHUNKERS
def test_bare_document_exactly_at_the_limit(chunker: Chunker) -> None:
    document = b"<a>" + b"x" * 57 + b"</a>"
    assert len(document) == 64
    assert decode(chunker(document), max_request_size=64) == frames(document)


@CHUNKERS
def test_bare_document_over_the_limit_is_fatal(chunker: Chunker) -> None:
    document = b"<a>" + b"x" * 58 + b"</a>"
    events = decode(chunker(document), max_request_size=64)
    assert_fatal(events[0], ErrorCode.REQUEST_TOO_LARGE)
    assert events[1:] == [END_OF_STREAM]


def test_unclosed_bare_document_is_refused_once_it_reaches_the_limit() -> None:
    decoder = FrameDecoder(max_request_size=64)
    decoder.feed(b"<a>" + b"x" * 60)
    assert decoder.next_event() is NEED_DATA
    decoder.feed(b"x")
    assert_fatal(decoder.next_event(), ErrorCode.REQUEST_TOO_LARGE)


# --- oversized declared lengths: skip mode -----------------------------------


@CHUNKERS
def test_oversized_length_line_is_refused_and_skipped(chunker: Chunker) -> None:
    oversized = b"<a>" + b"x" * 90 + b"</a>"
    stream = length_line(oversized) + length_line(CREATE)
    events = decode(chunker(stream), max_request_size=64)
    assert_refused(events[0], ErrorCode.REQUEST_TOO_LARGE)
    assert events[1:] == frames(CREATE)


def test_skipping_fifty_megabytes_keeps_memory_small() -> None:
    declared = 50 * 1024 * 1024
    chunk = b"x" * 65536
    decoder = FrameDecoder()
    decoder.feed(b"%d\n<" % declared)
    assert_refused(decoder.next_event(), ErrorCode.REQUEST_TOO_LARGE)
    remaining = declared - 1
    tracemalloc.start()
    try:
        while remaining > len(chunk):
            decoder.feed(chunk)
            assert decoder.next_event() is NEED_DATA
            assert decoder.in_request
            remaining -= len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    decoder.feed(chunk[:remaining] + length_line(CREATE))
    assert list(drain(decoder)) == [Frame(CREATE), NEED_DATA]
    assert not decoder.in_request


def test_eof_while_skipping_is_mid_request() -> None:
    events = decode([b"100\n<", b"x" * 50], max_request_size=64)
    assert_refused(events[0], ErrorCode.REQUEST_TOO_LARGE)
    assert_fatal(events[1], ErrorCode.BAD_FRAMING)
    assert events[2:] == [END_OF_STREAM]


# --- end of stream, fatal errors, misuse ----------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [length_line(ORDER), crlf_length_line(ORDER), binary(ORDER), bare(ORDER), binary(b"<" * 60)],
)
def test_eof_inside_a_request_is_fatal(request_bytes: bytes) -> None:
    for cut in range(1, len(request_bytes)):
        events = decode([request_bytes[:cut]])
        assert len(events) == 2, (cut, events)
        assert_fatal(events[0], ErrorCode.BAD_FRAMING)
        assert isinstance(events[0], RequestError)
        assert events[0].detail == "connection closed mid-request"
        assert events[1] is END_OF_STREAM


@pytest.mark.parametrize("stream", [b"", b"\n", b" \r\n\t"])
def test_eof_with_nothing_or_whitespace_is_a_clean_end(stream: bytes) -> None:
    assert decode([stream]) == [END_OF_STREAM]


def test_after_a_fatal_error_the_stream_is_over() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"<!DOCTYPE a><a/>")
    assert_fatal(decoder.next_event(), ErrorCode.FORBIDDEN_XML)
    decoder.feed(length_line(CREATE))
    assert decoder.next_event() is END_OF_STREAM
    assert decoder.next_event() is END_OF_STREAM
    assert not decoder.in_request


def test_end_of_stream_is_repeated() -> None:
    decoder = FrameDecoder()
    decoder.feed_eof()
    assert [decoder.next_event() for _ in range(3)] == [END_OF_STREAM] * 3


def test_feeding_after_eof_is_a_bug() -> None:
    decoder = FrameDecoder()
    decoder.feed_eof()
    with pytest.raises(RuntimeError):
        decoder.feed(CREATE)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FrameDecoder(0)


@pytest.mark.parametrize("framing", [length_line, binary, bare])
def test_in_request_while_a_request_is_partly_received(
    framing: Callable[[bytes], bytes],
) -> None:
    decoder = FrameDecoder()
    assert not decoder.in_request
    stream = framing(CREATE)
    for byte in byte_by_byte(stream[:-1]):
        decoder.feed(byte)
        assert decoder.next_event() is NEED_DATA
        assert decoder.in_request
    decoder.feed(stream[-1:])
    assert decoder.next_event() == Frame(CREATE)
    assert not decoder.in_request


# --- properties ----------------------------------------------------------

INTERESTING_BYTES = [
    *(bytes([byte]) for byte in b"<>/?!-[]\"' \t\r\n0123456789ax\x00\x01\xef\xbb\xbf"),
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"]]>",
    b"<?",
    b"?>",
    b"<!DOCTYPE",
    b"<a>",
    b"</a>",
    b"<a/>",
    b"\x00\x00\x00\n",
    b"1\n",
    b"12\r\n",
    b"0\n",
    b"<!-- c -->",
    b"<?p?>",
    b"<?xml ",
]

any_stream = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(INTERESTING_BYTES), max_size=80).map(b"".join),
)


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=400, deadline=None)
@given(stream=any_stream, limit=st.sampled_from([8, 64, DEFAULT_MAX_REQUEST_SIZE]), data=st.data())
def test_any_input_ends_cleanly_whatever_the_chunking(
    stream: bytes, limit: int, data: st.DataObject
) -> None:
    expected = decode([stream], limit)
    assert expected[-1] is END_OF_STREAM
    for event in expected[:-1]:
        assert isinstance(event, Frame | RequestError)
        if isinstance(event, Frame):
            assert 0 < len(event.body) <= limit
    fatal = [index for index, event in enumerate(expected) if getattr(event, "fatal", False)]
    assert fatal in ([], [len(expected) - 2])
    assert decode(data.draw(chunkings(stream)), limit) == expected
    assert decode(byte_by_byte(stream), limit) == expected


names = st.sampled_from(["a", "b", "order", "x:y"])
text = st.text(alphabet="ab >&/=\"' \n", max_size=8).map(str.encode)


@st.composite
def attributes(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(names, st.text(alphabet="a<>/=\"' ", max_size=6))))
    rendered = b""
    for name, value in pairs:
        quote = "'" if '"' in value else '"'
        rendered += f" {name}={quote}{value.replace(quote, '')}{quote}".encode()
    return rendered


comment = st.text(alphabet="ab<>/ '\"!", max_size=8).map(lambda t: b"<!--" + t.encode() + b"-->")
cdata = st.text(alphabet="ab<>/]&", max_size=8).filter(lambda t: "]]" not in t and t[-1:] != "]")
instruction = st.text(alphabet="ab<>/ ", max_size=8).map(lambda t: b"<?pi " + t.encode() + b"?>")


def element(name: str, attrs: bytes, children: list[bytes], end_space: bool) -> bytes:
    if not children:
        return f"<{name}".encode() + attrs + b"/>"
    closing = f"</{name}{' ' if end_space else ''}>".encode()
    return f"<{name}".encode() + attrs + b">" + b"".join(children) + closing


def elements(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(element, names, attributes(), st.lists(children, max_size=4), st.booleans())


nodes = st.recursive(
    st.one_of(text, comment, cdata.map(lambda t: b"<![CDATA[" + t.encode() + b"]]>"), instruction),
    elements,
    max_leaves=12,
)
prologs = st.sampled_from([b"", b'<?xml version="1.0"?>', b"\xef\xbb\xbf", b"<!-- c -->\n"])
documents = st.builds(lambda prolog, root: prolog + root, prologs, elements(nodes))
# Lengths whose binary header looks like whitespace, a '<' or a digit and a newline.
tricky_length_documents = st.sampled_from([9, 10, 13, 32, 49, 60, 2609]).map(
    lambda length: b"<r>" + b"y" * (length - 7) + b"</r>"
)
# A length line must start a line; the other framings may follow a space.
line_separators = st.sampled_from([b"", b"\n", b"\r\n", b" \t\n"])
any_separators = st.sampled_from([b"", b"\n", b"\r\n", b" \t\n", b" ", b"\t "])
LENGTH_LINES = (length_line, crlf_length_line)
Framed = tuple[bytes, Callable[[bytes], bytes], bytes]


@st.composite
def framed(draw: st.DrawFn) -> Framed:
    """A document, its framing, and the whitespace sent before it."""
    document = draw(st.one_of(documents, tricky_length_documents))
    framing = draw(st.sampled_from([length_line, crlf_length_line, binary, bare]))
    separator = draw(line_separators if framing in LENGTH_LINES else any_separators)
    return document, framing, separator


def expected_body(document: bytes, framing: object, previous: object) -> bytes:
    """A comment in a bare document's prolog belongs to a bare document just before it."""
    if framing is bare and previous is bare:
        return document.removeprefix(b"<!-- c -->\n")
    return document


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(framed(), max_size=6), data=st.data())
def test_framed_documents_decode_back_to_themselves(
    requests: list[Framed], data: st.DataObject
) -> None:
    stream = b"".join(separator + framing(document) for document, framing, separator in requests)
    framings = [framing for _, framing, _ in requests]
    bodies = [
        expected_body(document, framing, previous)
        for (document, framing, _), previous in zip(requests, [None, *framings], strict=False)
    ]
    assert decode(data.draw(chunkings(stream))) == frames(*bodies)
