"""Scale-out for real on one machine: a Dask LocalCluster and a Ray local cluster, two
worker processes each, scoring against the local endpoint (which runs in this process, on
loopback). Results complete, in the documented order, errors per row.

Skipped, with the reason, where Dask or Ray is not installed (``pip install -e '.[dev]'``
installs both on CPython 3.10-3.12)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import Scorer
from smclient.local import HandlerError, LocalEndpoint

pd = pytest.importorskip("pandas", reason="the tabular helpers need pandas (smclient[pandas])")

ROWS = 60


def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    """Doubles x for every JSON line; any request holding x == 13 is a model error."""
    xs = [json.loads(line)["x"] for line in body.decode().splitlines()]
    if 13 in xs:
        raise HandlerError("cannot score 13", 422)
    return "".join(json.dumps({"y": 2 * x}) + "\n" for x in xs).encode()


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(predict) as server:
        yield server


def frame() -> Any:
    return pd.DataFrame({"x": list(range(ROWS)), "tag": [f"t{i}" for i in range(ROWS)]})


def check(out: Any, chunk: int) -> None:
    """Every row once, in input order; the rows sent with row 13 (at most ``chunk`` rows in
    a row, wherever the engine cut its batches) carry the error, every other row its value."""
    assert out["x"].tolist() == list(range(ROWS))
    assert out["tag"].tolist() == [f"t{i}" for i in range(ROWS)]
    bad = [x for x, error in zip(out["x"], out["error"], strict=True) if isinstance(error, str)]
    assert 13 in bad
    assert len(bad) <= chunk
    assert bad == list(range(bad[0], bad[0] + len(bad)))
    for x, prediction, error in zip(out["x"], out["prediction"], out["error"], strict=True):
        if x in bad:
            assert prediction is None or pd.isna(prediction)
            assert error.startswith("ModelError (HTTP 424)")
        else:
            assert prediction == {"y": 2 * x}


# -- Dask ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    pytest.importorskip("dask.dataframe", reason="needs dask[dataframe] (smclient[dask])")
    distributed = pytest.importorskip("distributed", reason="needs distributed (smclient[dask])")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_dataframe_map_partitions(local: LocalEndpoint, dask_client: Any) -> None:
    import dask.dataframe as dd

    scorer = Scorer(local.endpoint(), columns=["x"], rows_per_request=5, concurrency=4)

    def score_where(part: Any) -> Any:
        out = scorer(part)
        out["pid"] = os.getpid()
        return out

    ddf = dd.from_pandas(frame(), npartitions=6)
    meta = scorer.meta(ddf).assign(pid=0)
    out = ddf.map_partitions(score_where, meta=meta).compute()
    check(out, chunk=5)
    workers = set(dask_client.run(os.getpid).values())
    assert len(workers) == 2
    assert set(out["pid"]) <= workers  # scored in the worker processes, not here
    assert os.getpid() not in set(out["pid"])


def test_dask_bag_map_partitions(local: LocalEndpoint, dask_client: Any) -> None:
    import dask.bag as db

    scorer = Scorer(local.endpoint(), columns=["x"])
    bag = db.from_sequence([{"x": x, "tag": f"t{x}"} for x in range(ROWS)], npartitions=4)
    records = bag.map_partitions(scorer).compute()
    check(pd.DataFrame.from_records(records), chunk=1)


# -- Ray -----------------------------------------------------------------------------------


def blocks() -> list[Any]:
    """Four blocks, so both workers get some. (Ray 2.60's own ``override_num_blocks`` splits
    with ``np.array_split``, which hands back arrays, not frames, under pandas 3.)"""
    df = frame()
    return [df.iloc[start : start + 15] for start in range(0, ROWS, 15)]


@pytest.fixture(scope="module")
def ray_module() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="needs ray[data] (smclient[ray])")
    pytest.importorskip("ray.data", reason="needs ray[data] (smclient[ray])")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",  # loopback only
        log_to_driver=False,
        configure_logging=False,
    )
    context = ray.data.DataContext.get_current()
    preserve, context.execution_options.preserve_order = (
        context.execution_options.preserve_order,
        True,  # the documented way to keep Ray Data's output in input order
    )
    context.enable_progress_bars = False
    try:
        yield ray
    finally:
        context.execution_options.preserve_order = preserve
        ray.shutdown()


def test_ray_map_batches_with_an_actor_per_worker(local: LocalEndpoint, ray_module: Any) -> None:
    ds = ray_module.data.from_pandas(blocks())
    out = ds.map_batches(
        Scorer,  # a callable class: one Scorer, so one client, per actor
        fn_constructor_args=(local.endpoint(),),
        fn_constructor_kwargs={"columns": ["x"], "rows_per_request": 4},
        compute=ray_module.data.ActorPoolStrategy(size=2),  # two actors
        batch_size=10,
        batch_format="pandas",
    ).to_pandas()
    check(out, chunk=4)


def test_ray_map_batches_with_a_scorer_instance(local: LocalEndpoint, ray_module: Any) -> None:
    ds = ray_module.data.from_pandas(blocks())
    scorer = Scorer(local.endpoint(), columns=["x"])
    out = ds.map_batches(scorer, batch_size=15, batch_format="pandas").to_pandas()
    check(out, chunk=1)
