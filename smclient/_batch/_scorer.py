"""``Scorer``: score tabular data against an endpoint, in a notebook or inside Ray Data, Dask
and Spark workers.

A scorer pickles the way an ``Endpoint`` does: settings only (name, region, URLs, client
settings, retry policy, a profile name), never credentials; each worker process builds its
own client from its own credential chain, once per process, shared by every batch the
process scores.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import InvalidInputError
from ._rows import FORMATS, PredictionCountError, RowFormat, check_format, decode_rows, encode_rows
from ._types import BatchItem

if TYPE_CHECKING:
    from .._endpoint import Endpoint, ModelHandle

__all__ = ["Scorer"]

# Per process: one Endpoint (so one client and one connection pool) per distinct settings.
_SHARED: dict[bytes, Endpoint] = {}
_SHARED_LOCK = threading.Lock()


def _shared(blob: bytes) -> Endpoint:
    with _SHARED_LOCK:
        found = _SHARED.get(blob)
        if found is None:
            found = pickle.loads(blob)  # our own bytes, from __getstate__
            _SHARED[blob] = found
        return found


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "scoring data frames needs pandas: pip install 'smclient[pandas]'"
        ) from None
    return pandas


class Scorer:
    """Scores the rows of a table against an endpoint and returns them with a prediction
    column: ``Scorer(endpoint, format="csv")(frame)``.

    ``endpoint``: an :class:`~smclient.Endpoint` or a :class:`~smclient.ModelHandle` (then
    every request names its target model). Rows go ``rows_per_request`` at a time (default
    1: one request per row) in ``format``:

    - ``"jsonlines"`` (default): one JSON object per row and line, ``application/jsonlines``;
    - ``"csv"``: the values only (no header, no index), ``text/csv``, as SageMaker's built-in
      algorithms expect;
    - ``"json"``: one JSON object for one row, else a JSON list of objects;
    - ``"npy"``: a 2-D NumPy array of the row values (``application/x-npy``).

    ``columns`` picks the input columns, in order (default: all). The answer is read by its
    content type (see the batch scoring docs) and must hold one prediction per row sent.

    The result is the input with ``prediction_column`` (default ``"prediction"``) and
    ``error_column`` (default ``"error"``: ``None``, or ``"ErrorClass: message"`` for each row
    of a failed request, whose prediction is then ``None``) added, aligned with the input
    rows and index. ``error_column=None`` raises the first error instead.
    ``keep_input=False`` returns only the new columns (same index).

    ``concurrency`` (default 8) requests are in flight per call, optionally under
    ``rate_limit`` requests per second, with ``accept`` and ``custom_attributes`` on every
    request; retries follow the endpoint's :class:`~smclient.RetryPolicy`.

    Callable on a pandas ``DataFrame`` (returns one), a pyarrow ``Table`` (returns one), a
    dict of NumPy arrays (Ray Data's ``"numpy"`` batches; returns one) or a list of records
    (a Dask Bag partition; returns a list of dicts). :meth:`map_frames` is the function of
    Spark's ``mapInPandas``; :meth:`meta` the empty output frame Dask's ``map_partitions``
    wants as ``meta``. A scorer pickles without credentials (see :class:`~smclient.Endpoint`)
    and each worker process builds one client, shared by every batch it scores.

    pandas (and pyarrow for tables) are imported on first use: ``smclient[pandas]``.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        endpoint: Endpoint | ModelHandle,
        *,
        format: RowFormat = "jsonlines",
        columns: Iterable[str] | None = None,
        rows_per_request: int = 1,
        prediction_column: str = "prediction",
        error_column: str | None = "error",
        keep_input: bool = True,
        concurrency: int = 8,
        rate_limit: float | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
    ) -> None:
        from .._endpoint import ModelHandle
        from ._rate import check_rate
        from ._runner import check_window

        self.target_model: str | None = None
        if isinstance(endpoint, ModelHandle):
            self._endpoint, self.target_model = endpoint.endpoint, endpoint.target_model
        else:
            self._endpoint = endpoint
        self.format = check_format(format)
        self.columns = None if columns is None else tuple(columns)
        if isinstance(rows_per_request, bool) or not isinstance(rows_per_request, int):
            raise InvalidInputError("rows_per_request", f"got {rows_per_request!r}", limit=">= 1")
        if rows_per_request < 1:
            raise InvalidInputError("rows_per_request", f"got {rows_per_request}", limit=">= 1")
        self.rows_per_request = rows_per_request
        if error_column is not None and error_column == prediction_column:
            raise InvalidInputError(
                "error_column", "must differ from prediction_column", limit="a column name"
            )
        self.prediction_column = prediction_column
        self.error_column = error_column
        self.keep_input = keep_input
        self.concurrency, _ = check_window(
            concurrency, None, self._endpoint.config.max_pool_connections
        )
        self.rate_limit = check_rate(rate_limit)
        self.accept = accept
        self.custom_attributes = custom_attributes

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint requests go to (in a worker: this process's shared copy)."""
        return self._endpoint

    # -- pickling: settings only; one Endpoint per process ------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_endpoint"] = pickle.dumps(self._endpoint)  # an Endpoint drops credentials
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["_endpoint"] = _shared(state["_endpoint"])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        target = f", target_model={self.target_model!r}" if self.target_model else ""
        return (
            f"Scorer({self._endpoint.name!r}{target}, format={self.format!r}, "
            f"rows_per_request={self.rows_per_request}, concurrency={self.concurrency})"
        )

    # -- entry points ---------------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        """Score ``batch``: a pandas DataFrame, a pyarrow Table, a dict of arrays or a list
        of records; the result has the same kind."""
        pd = _pandas()
        if isinstance(batch, pd.DataFrame):
            return self.score(batch)
        if isinstance(batch, dict):
            out = self.score(pd.DataFrame(batch))
            return {name: out[name].to_numpy() for name in out.columns}
        if isinstance(batch, list | tuple):
            frame = pd.DataFrame.from_records(list(batch)) if batch else pd.DataFrame()
            records: list[dict[str, Any]] = self.score(frame).to_dict(orient="records")
            return records
        if type(batch).__module__.startswith("pyarrow"):
            import pyarrow

            return pyarrow.Table.from_pandas(self.score(batch.to_pandas()), preserve_index=False)
        raise InvalidInputError(
            "batch",
            f"cannot score a {type(batch).__name__}",
            limit="a pandas DataFrame, a pyarrow Table, a dict of arrays or a list of records",
        )

    def map_frames(self, frames: Iterable[Any]) -> Iterator[Any]:
        """Score each DataFrame of ``frames`` in turn: the function Spark's
        ``DataFrame.mapInPandas`` calls with an iterator of pandas frames."""
        for frame in frames:
            yield self.score(frame)

    def meta(self, frame: Any) -> Any:
        """The empty output frame for the input ``frame`` (a pandas or Dask DataFrame): what
        Dask's ``map_partitions(scorer, meta=scorer.meta(ddf))`` needs, so that Dask does not
        call the scorer on made-up rows to guess it."""
        base = getattr(frame, "_meta", frame)
        return self.score(base.iloc[:0])

    def score(self, frame: Any) -> Any:
        """Score a pandas DataFrame; see the class docstring for the columns added."""
        pd = _pandas()
        total = len(frame)
        predictions: list[Any] = [None] * total
        errors: list[str | None] = [None] * total
        if total:
            self._fill(self._inputs(frame), predictions, errors)
        out = frame.copy() if self.keep_input else pd.DataFrame(index=frame.index)
        out[self.prediction_column] = pd.Series(predictions, index=frame.index, dtype=object)
        if self.error_column is not None:
            out[self.error_column] = pd.Series(errors, index=frame.index, dtype=object)
        return out

    def _inputs(self, frame: Any) -> Any:
        if self.columns is None:
            return frame
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                "columns",
                f"{missing} not in the frame",
                limit=f"columns of the frame: {list(frame.columns)[:20]}",
            )
        return frame.loc[:, list(self.columns)]

    # -- the work ----------------------------------------------------------------------------

    def _chunks(self, data: Any) -> Iterator[BatchItem]:
        step, single = self.rows_per_request, self.rows_per_request == 1
        content_type = FORMATS[self.format]
        for start in range(0, len(data), step):
            part = data.iloc[start : start + step]
            yield BatchItem(
                encode_rows(part, self.format, single=single),
                content_type=content_type,
                accept=self.accept,
                custom_attributes=self.custom_attributes,
            )

    def _fill(self, data: Any, predictions: list[Any], errors: list[str | None]) -> None:
        target: Any = self._endpoint
        if self.target_model is not None:
            target = self._endpoint.model(self.target_model)
        step = self.rows_per_request
        run = target.invoke_many(
            self._chunks(data),
            concurrency=self.concurrency,
            rate_limit=self.rate_limit,
            stop_on_error=self.error_column is None,
        )
        with run:
            for outcome in run:
                start = outcome.index * step
                rows = min(step, len(data) - start)
                failure: Exception | None = outcome.error
                if outcome.result is not None:
                    try:
                        values = decode_rows(
                            outcome.result.body, outcome.result.content_type, self.format, rows
                        )
                    except (PredictionCountError, ValueError) as exc:
                        failure = exc
                    else:
                        predictions[start : start + rows] = values
                if failure is not None:
                    if self.error_column is None:
                        raise failure
                    errors[start : start + rows] = [_describe(failure)] * rows


def _describe(error: Exception) -> str:
    """``"ErrorClass: message"``, without repeating a class name the message starts with."""
    name, text = type(error).__name__, str(error)
    return text if text.startswith(name + " ") else f"{name}: {text}"
