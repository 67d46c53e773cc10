"""Our murmur2 must agree with aiokafka's (and so with Faust and the producers) on every key, or packs go astray."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streaming.topology import key_partition, murmur2


@given(st.binary(max_size=64))
def test_murmur2_equals_aiokafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_known_partitions() -> None:
    # every tail length (0-3 bytes past the words), UTF-8 entity keys as the worker hashes them
    for key in (b"", b"a", b"ab", b"abc", b"abcd", "device:d\u00e9v-42".encode(), b"payment_method:pm_123456789"):
        assert key_partition(key, 12) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 12
