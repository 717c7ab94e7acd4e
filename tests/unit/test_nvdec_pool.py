"""The bookkeeping of the NVDEC decoder pool (analyzers._nvdec._DecoderPool), without a GPU.

The pool's decoders stand in here for PyNvVideoCodec's SimpleDecoder (they record what they were pointed at);
the real decoders, their streams and the frames they give are tested on a GPU in tests/gpu/test_nvdec.py."""

from __future__ import annotations

import threading

import pytest

from analyzers._nvdec import _DecoderPool


class StreamDecodeError(ValueError):
    pass


class RecordingDecoder:
    def __init__(self, path: str) -> None:
        if "unreadable" in path:
            raise RuntimeError("could not open the input\nmore lines")
        self.paths = [path]

    def reconfigure_decoder(self, path: str) -> None:
        if "unreadable" in path:
            raise RuntimeError("could not open the input")
        self.paths.append(path)


class RecordingStream:
    synchronized = 0

    def synchronize(self) -> None:
        self.synchronized += 1


def new_pool() -> _DecoderPool:
    return _DecoderPool(build=lambda path, device: (RecordingDecoder(path), RecordingStream()))


def test_a_decoder_is_built_once_and_pointed_at_each_next_file():
    pool = new_pool()
    for path in ("a.mp4", "b.mp4", "c.mp4"):
        with pool.lease(path, 0, StreamDecodeError) as (decoder, stream):
            assert decoder.paths[-1] == path
    assert pool.built == 1 and pool.idle() == 1
    assert decoder.paths == ["a.mp4", "b.mp4", "c.mp4"]
    assert stream.synchronized == 3  # each part's work is done before the decoder is lent again


def test_parts_decoded_at_once_get_decoders_of_their_own_and_all_are_kept():
    pool = new_pool()
    both_inside = threading.Barrier(2, timeout=5)
    seen = []

    def part(path: str) -> None:
        with pool.lease(path, 0, StreamDecodeError) as (decoder, _):
            seen.append(decoder)
            both_inside.wait()  # the two leases overlap

    threads = [threading.Thread(target=part, args=(p,)) for p in ("a.mp4", "a.mp4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen[0] is not seen[1] and pool.built == 2 and pool.idle() == 2


def test_a_decoder_whose_part_failed_is_dropped_not_lent_again():
    pool = new_pool()
    with pytest.raises(StreamDecodeError, match="damaged"):
        with pool.lease("a.mp4", 0, StreamDecodeError) as (failed, _):
            raise StreamDecodeError("the video stream is damaged near frame 40")
    assert pool.idle() == 0
    with pool.lease("b.mp4", 0, StreamDecodeError) as (decoder, _):
        assert decoder is not failed
    assert pool.built == 2


def test_a_file_no_decoder_can_open_fails_with_the_callers_error_and_keeps_nothing():
    pool = new_pool()
    with pytest.raises(StreamDecodeError, match="^NVDEC could not open the video stream: could not open the input$"):
        with pool.lease("unreadable.mp4", 0, StreamDecodeError):
            pass
    with pool.lease("a.mp4", 0, StreamDecodeError):
        pass
    with pytest.raises(StreamDecodeError, match="could not open"):  # now through a kept decoder's reconfigure
        with pool.lease("unreadable.mp4", 0, StreamDecodeError):
            pass
    assert pool.idle() == 0 and pool.built == 1


def test_decoders_stay_on_the_device_they_were_built_for():
    pool = new_pool()
    with pool.lease("a.mp4", 0, StreamDecodeError) as (on_0, _):
        pass
    with pool.lease("a.mp4", 1, StreamDecodeError) as (on_1, _):
        assert on_1 is not on_0
    with pool.lease("b.mp4", 0, StreamDecodeError) as (again_0, _):
        assert again_0 is on_0
    assert pool.built == 2
