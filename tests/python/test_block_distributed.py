"""The block dataset under tf.distribute (MirroredStrategy on two logical
CPUs) and the tf.data service (a dispatcher and two workers on 127.0.0.1):
every record exactly once with the sharding policies that guarantee it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tensorflow as tf

import block_files as bf
from bpr_ops import data

RECORDS = [bf.data_record(i) for i in range(60)]
ROOT = Path(__file__).resolve().parents[2]


def _files(tmp_path, n=6):
    names = []
    for k in range(n):
        p = str(tmp_path / f"part-{k}.gz")
        with open(p, "wb") as f:
            f.write(bf.gz(bf.file_bytes(RECORDS[k::n], 4)))
        names.append(p)
    return names


@pytest.fixture(scope="module")
def service():
    import socket

    svc = tf.data.experimental.service
    # Static sharding (DATA, FILE) needs the workers' addresses up front.
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    addresses = [f"127.0.0.1:{p}" for p in ports]
    dispatcher = svc.DispatchServer(svc.DispatcherConfig(port=0, worker_addresses=addresses))
    # By number, not the "localhost" of dispatcher.target: where localhost does not
    # resolve (a root without /etc/hosts), gRPC retries forever and the test hangs.
    address = "127.0.0.1:" + dispatcher.target.rsplit(":", 1)[1]
    target = "grpc://" + address
    workers = [
        svc.WorkerServer(svc.WorkerConfig(dispatcher_address=address, worker_address=a, port=p))
        for a, p in zip(addresses, ports)
    ]
    yield target, workers
    for w in workers:
        w.stop()
    dispatcher.stop()


def _files_dataset(names):
    # The files are the split source: one file per split, each to one worker.
    return tf.data.Dataset.from_tensor_slices(names).interleave(
        lambda f: data.BlockFormatDataset(f), cycle_length=2, num_parallel_calls=2
    )


@pytest.mark.parametrize("policy", ["DYNAMIC", "DATA", "FILE_OR_DATA"])
def test_data_service_delivers_every_record_exactly_once(tmp_path, service, policy):
    target, _ = service
    names = _files(tmp_path)
    svc = tf.data.experimental.service
    if policy == "DYNAMIC":
        ds = _files_dataset(names)
    else:
        ds = data.BlockFormatDataset(names)
    ds = ds.apply(
        svc.distribute(
            processing_mode=getattr(svc.ShardingPolicy, policy),
            service=target,
            job_name=f"exactly-once-{policy}",
        )
    )
    got = [r.numpy() for r in ds]
    assert len(got) == len(RECORDS)
    assert sorted(got) == sorted(RECORDS)


@pytest.mark.parametrize("policy", ["DYNAMIC", "DATA"])
def test_data_service_batched_source_delivers_every_record_exactly_once(tmp_path, service, policy):
    """BlockFormatBatchDataset (batch_size=): DATA shards its batches, DYNAMIC
    hands out files, each read in batches."""
    target, _ = service
    names = _files(tmp_path)
    svc = tf.data.experimental.service
    if policy == "DYNAMIC":
        ds = tf.data.Dataset.from_tensor_slices(names).interleave(
            lambda f: data.BlockFormatDataset(f, batch_size=3), cycle_length=2, num_parallel_calls=2)
    else:
        ds = data.BlockFormatDataset(names, batch_size=7)
    ds = ds.apply(
        svc.distribute(
            processing_mode=getattr(svc.ShardingPolicy, policy),
            service=target,
            job_name=f"exactly-once-batched-{policy}",
        )
    )
    got = [r for batch in ds for r in batch.numpy().tolist()]
    assert len(got) == len(RECORDS)
    assert sorted(got) == sorted(RECORDS)


def test_data_service_file_policy_is_refused_not_inexact(tmp_path, service):
    """FILE: TensorFlow's auto-shard rewrite knows only its own file readers;
    it fails loudly on this op (FILE_OR_DATA falls back to DATA, exact)."""
    target, _ = service
    svc = tf.data.experimental.service
    ds = data.BlockFormatDataset(_files(tmp_path)).apply(
        svc.distribute(processing_mode=svc.ShardingPolicy.FILE, service=target, job_name="file")
    )
    with pytest.raises(tf.errors.OpError, match="Did not find a shardable source"):
        list(ds)


def test_data_service_off_policy_repeats_records(tmp_path, service):
    """Why OFF is not in the README's list: each worker reads every file."""
    target, _ = service
    names = _files(tmp_path)
    svc = tf.data.experimental.service
    ds = data.BlockFormatDataset(names).apply(
        svc.distribute(processing_mode=svc.ShardingPolicy.OFF, service=target)
    )
    got = [r.numpy() for r in ds]
    assert sorted(got) == sorted(RECORDS * 2)


def test_mirrored_strategy_on_two_cpus(tmp_path):
    """In a child process: logical devices must be set before TensorFlow starts."""
    names = _files(tmp_path)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(ROOT / 'python')!r}, {str(ROOT / 'tests' / 'python')!r}]
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import bpr_ops
        from bpr_ops import data
        import block_files as bf
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"])
        ds = data.training_dataset({names!r}, reader, batch_size=10, labels=["label"])
        dist = strategy.experimental_distribute_dataset(ds)
        seen = []
        @tf.function
        def step(batch):
            x, y, w = batch
            return strategy.run(lambda x: x["continuous"][:, 0], args=(x,))
        for batch in dist:
            out = step(batch)
            for t in strategy.experimental_local_results(out):
                seen.extend(t.numpy().tolist())
        assert sorted(seen) == [float(i) for i in range(60)], seen
        print("OK", len(seen))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and "OK 60" in out.stdout, out.stderr[-3000:]


def test_data_service_one_pass_training_dataset(tmp_path, service):
    """training_dataset's one-pass source (BlockFormatFeatureDataset, its plan
    an input) goes to the workers serialized; DATA shards its batches: every
    record's features exactly once."""
    import bpr_ops

    target, _ = service
    names = _files(tmp_path)
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"])
    ds = data.training_dataset(names, reader, batch_size=7, labels=["label"], check_records=0)
    assert "BlockFormatFeatureDataset" in bf.dataset_ops(ds)
    svc = tf.data.experimental.service
    ds = ds.apply(svc.distribute(processing_mode=svc.ShardingPolicy.DATA, service=target,
                                 job_name="exactly-once-one-pass"))
    got = sorted(v for x, _, _ in ds for v in x["continuous"][:, 0].numpy().tolist())
    assert got == [float(i) for i in range(len(RECORDS))]
