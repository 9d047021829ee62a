"""The relay's own partitioning of the messages it batches (services/adapters/relay.py) puts
every key where aiokafka's default partitioner (the Java client's murmur2) would."""

from __future__ import annotations

from aiokafka import partitioner
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.adapters.relay import murmur2, partition_of


@given(st.binary(max_size=256))
def test_murmur2_is_the_java_clients(key: bytes) -> None:
    assert murmur2(key) == partitioner.murmur2(key)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_a_key_lands_where_the_default_partitioner_puts_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
    assert partition_of(key, partitions) == partition_of(key, partitions)  # cached, same answer


def test_a_message_without_a_key_goes_to_one_of_the_partitions() -> None:
    assert {partition_of(None, [0, 1, 2]) for _ in range(200)} <= {0, 1, 2}
