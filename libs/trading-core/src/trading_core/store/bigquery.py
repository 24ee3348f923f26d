"""The BigQuery warehouse: a service's events in a dataset's tables, fed from its journal.

Tables. The dataset holds the service's raw events table (`<service>_events`) and the typed
tables of the schema (shared by the services: each row says its `service`), partitioned by day
on `event_time` and clustered as `schema.bigquery_tables()` says. In the cloud Terraform owns
them (terraform/modules/bigquery/tables.json, written from the same schema); the store checks
them when it starts and creates what is missing, adds missing columns (NULL in the rows
already stored) and refuses a column of another type (`SchemaMismatch`), as for DuckDB. A
typed table added later is not filled from the raw events here (DuckDB's files are). A table
that gained columns is written through a new stream: a stream keeps its table's schema as it
was when the stream was made.

Writes. Rows go through the Storage Write API as Arrow record batches: one COMMITTED write
stream per table of the service, each append at an explicit offset. A stream's offsets are
a count this store keeps durably, beside the journal, in `<state_dir>/<service>.bigquery.json`
(written to a temporary file, fsync'd, renamed): the stream names, the next offset of each,
and how far the journal has been fed. Exactly once, across crashes:

1. Before appending a batch the store saves its intent: the journal position the batch ends
   at (`pending_through`) with the offsets it starts from.
2. It appends each table's rows at its offset. BigQuery takes an append whole or not at all,
   and refuses one at an offset the stream already holds (ALREADY_EXISTS, storage error
   OFFSET_ALREADY_EXISTS): that refusal means "stored before", and is taken as success.
3. It saves the new offsets and progress (`fed_through`), and forgets the intent.

A crash anywhere leaves the file at 1 or 3. At 1, the restarted feeder reads the same journal
events again (the journal is append-only; only events up to `pending_through` are taken while
the intent stands, so every append falls inside the first attempt's), makes the same rows per
table, and appends them at the same offsets: the appends that had landed are refused, the
others land. An append still in flight from the killed process is ordered by BigQuery against
the new one on the same stream and offset: one lands, the other is refused. Nothing is lost
or stored twice.

BigQuery has no transaction across tables: while a feed runs, a query can see a batch's raw
rows before its typed rows (DuckDB shows both at once). Each row still appears exactly once.

When a stream is gone (NOT_FOUND: expired, or an emulator restarted) and no intent stands, a
new stream replaces it. A stream gone while an intent stands is not resolved automatically
(which of its appends landed is unknown): the feed fails, says so, and the journal keeps the
events.

The store is never on the order path: the feeder calls it on its own thread every interval.
An append request is at most 10 MB (BigQuery's limit): `database.batch_size` bounds it (5,000
events of the platform are ~2 MB raw).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from google.api_core import exceptions as google_errors

from trading_core.journal import KeptRecord
from trading_core.store.base import WarehouseWriteError
from trading_core.store.rows import arrow_batches
from trading_core.store.schema import (
    DECIMAL,
    EVENT_COLUMNS,
    TABLES,
    Column,
    SchemaMismatch,
    bigquery_tables,
    missing_columns,
    raw_table_name,
)

log = logging.getLogger(__name__)

# BigQuery's Arrow type of BIGNUMERIC: what the Write API takes for our DECIMAL(38, 18) columns.
_BIGNUMERIC_ARROW = pa.decimal256(76, 38)
# Type names as the tables API reports them (legacy SQL names) -> the schema's standard names.
_STANDARD_TYPES = {"INTEGER": "INT64", "BOOLEAN": "BOOL", "FLOAT": "FLOAT64"}
_GRPC_ALREADY_EXISTS = 6
_GRPC_NOT_FOUND = 5
_TIMEOUT_S = 30.0  # per call: a feed that cannot write fails and is tried again next interval


class StreamLost(WarehouseWriteError):
    """A write stream is gone while a batch's intent stands: which appends landed is unknown."""


@dataclass
class _State:
    """What the store keeps beside the journal (see the module's docstring)."""

    dataset: str
    fed_through: int = 0
    streams: dict[str, str] = field(default_factory=dict)  # table -> write stream name
    offsets: dict[str, int] = field(default_factory=dict)  # table -> next offset after it
    pending_through: int | None = None  # an intent: a batch through this position

    @classmethod
    def read(cls, path: Path) -> _State | None:
        if not path.exists():
            return None
        values = json.loads(path.read_text())
        return cls(**values)

    def write(self, path: Path) -> None:
        """Replaces the file atomically and durably."""
        text = json.dumps(self.__dict__, sort_keys=True)
        temporary = path.with_name(f"{path.name}.tmp")
        with temporary.open("w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class BigQueryWarehouse:
    """One service's events in a BigQuery dataset, written through the Storage Write API."""

    # An API call refused or unanswered, an append refused, the progress file not writable, a
    # table of another type.
    transient_errors: tuple[type[Exception], ...] = (
        google_errors.GoogleAPIError,
        WarehouseWriteError,
        OSError,
        SchemaMismatch,
    )

    def __init__(
        self,
        service: str,
        *,
        project: str,
        dataset: str,
        state_dir: Path,
        location: str = "US",
        endpoint: str | None = None,
        write_endpoint: str | None = None,
    ) -> None:
        """`endpoint` (REST, "http://host:port") and `write_endpoint` (gRPC, "host:port") point
        it at an emulator, with anonymous credentials and no TLS; unset, at Google with the
        application default credentials."""
        self.service = service
        self.project = project
        self.dataset = dataset
        self.location = location
        self.table = raw_table_name(service)
        self.path = Path(state_dir) / f"{service}.bigquery.json"  # its progress
        self._endpoint = endpoint
        self._write_endpoint = write_endpoint
        self._lock = threading.Lock()
        self._state: _State | None = None  # as the file holds it, between feeds
        self._inherited = False  # the intent standing was left by an earlier process
        self._verified = False
        self._widened: set[str] = set()  # tables that gained columns: their streams renewed
        self._client: Any = None
        self._writer: Any = None

    @property
    def dataset_id(self) -> str:
        return f"{self.project}.{self.dataset}"

    def fed_through(self) -> int:
        with self._lock:
            return self._loaded().fed_through

    def feed(self, records: Sequence[KeptRecord]) -> int:
        with self._lock:
            state = self._loaded()
            if state.pending_through is not None:  # finish the batch a crash interrupted
                records = [k for k in records if k.seq <= state.pending_through]
            fresh = [k for k in records if k.seq > state.fed_through and k.record.is_event]
            through = max([state.fed_through, *(k.seq for k in records)])
            try:
                if fresh:
                    self._append(state, arrow_batches(self.table, self.service, fresh), through)
                state.fed_through = through
                if state.pending_through is not None and through >= state.pending_through:
                    state.pending_through = None
                    self._inherited = False
                state.write(self.path)
            except BaseException:
                self._state = None  # what the file holds, on the next try
                raise
        return len(fresh)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.transport.close()
                self._writer = None
            if self._client is not None:
                self._client.close()
                self._client = None

    # The tables ---------------------------------------------------------------------------

    def _loaded(self) -> _State:
        """The state, read once; the tables checked (and made) once per object."""
        if not self._verified:
            self._widened = self._prepare_tables()
            self._verified = True
        if self._state is None:
            state = _State.read(self.path)
            if state is None or state.dataset != self.dataset_id:
                # A new dataset, or a state file lost: its raw table says how far it was fed
                # (streams start anew: no batch of this store is half written).
                state = _State(self.dataset_id, fed_through=self._last_sequence())
            self._inherited = state.pending_through is not None
            self._state = state
        if self._widened and self._state.pending_through is None:
            self._renew_streams(self._state)
        return self._state

    def _renew_streams(self, state: _State) -> None:
        """Forgets the streams of the tables that gained columns: a write stream keeps the
        schema its table had when it was made (WriteStream.table_schema "could go out of
        date"), and may refuse rows with the new columns. Once no batch's intent stands (its
        appends must land on the streams it began with), the next append makes new ones."""
        for table in self._widened:
            state.streams.pop(table, None)
            state.offsets.pop(table, None)
        self._widened = set()
        state.write(self.path)

    def _bigquery(self) -> Any:
        if self._client is None:
            self._client = bigquery_client(self.project, self.location, self._endpoint)
        return self._client

    def _prepare_tables(self) -> set[str]:
        """Makes the dataset and the tables that are missing, adds missing columns; returns
        the tables that gained columns."""
        bigquery = _module("google.cloud.bigquery")
        client = self._bigquery()
        try:
            # Looked for first: where Terraform made it, the service may read it but not create
            # datasets, and BigQuery checks that right before it looks whether one exists.
            client.get_dataset(self.dataset_id, retry=_retry(), timeout=_TIMEOUT_S)
        except google_errors.NotFound:
            dataset = bigquery.Dataset(self.dataset_id)
            dataset.location = self.location
            client.create_dataset(dataset, exists_ok=True, retry=_retry(), timeout=_TIMEOUT_S)
        wanted = bigquery_tables([self.service])
        columns: dict[str, Sequence[Column]] = {
            self.table: EVENT_COLUMNS,
            **{t.name: t.columns for t in TABLES},
        }
        widened = set()
        for name, spec in wanted.items():
            reference = f"{self.dataset_id}.{name}"
            try:
                found = client.get_table(reference, retry=_retry(), timeout=_TIMEOUT_S)
            except google_errors.NotFound:
                table = bigquery.Table(
                    reference,
                    schema=[bigquery.SchemaField.from_api_repr(f) for f in spec["schema"]],
                )
                table.description = spec["description"]
                table.time_partitioning = bigquery.TimePartitioning(
                    type_=bigquery.TimePartitioningType.DAY, field=spec["partition_field"]
                )
                table.clustering_fields = spec["clustering"]
                client.create_table(table, exists_ok=True, retry=_retry(), timeout=_TIMEOUT_S)
                log.info("warehouse %s: created table %s", self.dataset_id, name)
                continue
            types = {f.name: _STANDARD_TYPES.get(f.field_type, f.field_type) for f in found.schema}
            added = missing_columns(name, columns[name], types, _bigquery_type)
            if added:
                fields = {f["name"]: f for f in spec["schema"]}
                found.schema = [
                    *found.schema,
                    *(bigquery.SchemaField.from_api_repr(fields[c.name]) for c in added),
                ]
                client.update_table(found, ["schema"], retry=_retry(), timeout=_TIMEOUT_S)
                widened.add(name)
                log.info(
                    "warehouse %s: %s gained %s",
                    self.dataset_id,
                    name,
                    ", ".join(c.name for c in added),
                )
        return widened

    def _last_sequence(self) -> int:
        rows = (
            self._bigquery()
            .query(
                f"SELECT coalesce(max(store_sequence), 0) FROM `{self.dataset_id}.{self.table}`"  # noqa: S608
            )
            .result()
        )
        return int(next(iter(rows))[0])

    # The Storage Write API ------------------------------------------------------------------

    def _write_client(self) -> Any:
        if self._writer is None:
            bigquery_storage_v1 = _module("google.cloud.bigquery_storage_v1")
            if self._write_endpoint is None:
                self._writer = bigquery_storage_v1.BigQueryWriteClient()
            else:
                import grpc

                transports = _module(
                    "google.cloud.bigquery_storage_v1.services.big_query_write.transports"
                )

                channel = grpc.insecure_channel(self._write_endpoint)
                self._writer = bigquery_storage_v1.BigQueryWriteClient(
                    transport=transports.BigQueryWriteGrpcTransport(channel=channel)
                )
        return self._writer

    def _append(self, state: _State, batches: Mapping[str, pa.Table], through: int) -> None:
        if state.pending_through is None:
            for name in batches:
                if name not in state.streams:
                    state.streams[name] = self._new_stream(name)
                    state.offsets[name] = 0
            state.pending_through = through
            state.write(self.path)  # the intent, before any append
        for name, batch in batches.items():
            if name not in state.streams:  # a table an interrupted batch had no rows for
                raise StreamLost(f"warehouse {self.dataset_id}: no stream for {name}")
            self._append_one(state, name, batch)
            state.offsets[name] += batch.num_rows

    def _new_stream(self, table: str) -> str:
        types = _module("google.cloud.bigquery_storage_v1.types")
        parent = f"projects/{self.project}/datasets/{self.dataset}/tables/{table}"
        stream = self._write_client().create_write_stream(
            parent=parent,
            write_stream=types.WriteStream(type_=types.WriteStream.Type.COMMITTED),
            timeout=_TIMEOUT_S,
        )
        return str(stream.name)

    def _append_one(self, state: _State, table: str, batch: pa.Table) -> None:
        types = _module("google.cloud.bigquery_storage_v1.types")
        batch = _for_bigquery(batch)
        (record_batch,) = batch.combine_chunks().to_batches()  # a table's batch has rows
        request = types.AppendRowsRequest(
            write_stream=state.streams[table],
            offset=state.offsets[table],
            arrow_rows=types.AppendRowsRequest.ArrowData(
                writer_schema=types.ArrowSchema(
                    serialized_schema=batch.schema.serialize().to_pybytes()
                ),
                rows=types.ArrowRecordBatch(
                    serialized_record_batch=record_batch.serialize().to_pybytes(),
                    row_count=batch.num_rows,
                ),
            ),
        )
        try:
            responses = self._write_client().append_rows(iter([request]), timeout=_TIMEOUT_S)
            response = next(iter(responses))
        except google_errors.AlreadyExists:
            return  # stored by an earlier attempt
        except google_errors.NotFound as error:
            self._stream_gone(state, table, str(error))
            self._append_one(state, table, batch)
            return
        code = response.error.code if "error" in response else 0
        if code == _GRPC_ALREADY_EXISTS:
            log.info(
                "warehouse %s: %s rows at offset %d were stored before",
                self.dataset_id,
                table,
                state.offsets[table],
            )
            return
        if code == _GRPC_NOT_FOUND:
            self._stream_gone(state, table, response.error.message)
            self._append_one(state, table, batch)
            return
        if code:
            raise WarehouseWriteError(
                f"warehouse {self.dataset_id}: append to {table} refused: "
                f"{response.error.message} ({code})"
            )

    def _stream_gone(self, state: _State, table: str, why: str) -> None:
        """Replaces a lost stream, when no batch's outcome depends on it: this process made
        the intent standing, and nothing of its batch has been appended to this table."""
        if self._inherited:
            raise StreamLost(
                f"warehouse {self.dataset_id}: the write stream of {table} is gone ({why}) "
                "while an interrupted batch may have reached it; resolve by hand"
            )
        log.warning("warehouse %s: write stream of %s gone (%s); a new one", self.dataset_id,
                    table, why)  # fmt: skip
        state.streams[table] = self._new_stream(table)
        state.offsets[table] = 0
        state.write(self.path)


def bigquery_client(project: str, location: str, endpoint: str | None) -> Any:
    """A BigQuery client: Google's with the application default credentials, or an emulator's
    at `endpoint` with anonymous ones."""
    bigquery = _module("google.cloud.bigquery")
    if endpoint is None:
        return bigquery.Client(project=project, location=location)
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(
        project=project,
        location=location,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def _module(name: str) -> Any:
    """The Google client modules, imported when first used (not by every service at import)
    and as Any: their partial type information hides google.cloud.pubsub_v1 from mypy."""
    return importlib.import_module(name)


def _retry() -> Any:
    bigquery = _module("google.cloud.bigquery")
    return bigquery.DEFAULT_RETRY.with_deadline(_TIMEOUT_S)


def _bigquery_type(column: Column) -> str:
    return column.bigquery_type


def _for_bigquery(batch: pa.Table) -> pa.Table:
    """The batch with its decimals as BigQuery's Arrow BIGNUMERIC (the values are unchanged)."""
    fields = [
        pa.field(f.name, _BIGNUMERIC_ARROW, f.nullable) if f.type == DECIMAL.arrow else f
        for f in batch.schema
    ]
    return batch.cast(pa.schema(fields))
