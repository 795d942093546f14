"""User-behaviour events (OpenSearch UBI format): parse, read and store them durably.

>>> from shopsearch.events import EventStore, RetentionPolicy      # doctest: +SKIP
>>> with EventStore.open("indexes/esci-us") as store:             # doctest: +SKIP
...     report = store.ingest_file("ubi.jsonl", retention=RetentionPolicy(max_age_days=90))
"""

from shopsearch.events.reader import (
    DEFAULT_MAX_LINE_BYTES,
    EventProblem,
    iter_parsed,
    iter_records,
)
from shopsearch.events.schema import (
    ACTIONS,
    EventRecord,
    QueryRecord,
    Record,
    canonical_json,
    derive_event_id,
    format_timestamp,
    parse_record,
    parse_timestamp,
    parse_values,
    to_ubi,
)
from shopsearch.events.store import (
    DB_NAME,
    DEFAULT_BATCH_SIZE,
    AddResult,
    EventStore,
    IngestReport,
    RetentionPolicy,
)

__all__ = [
    "ACTIONS",
    "DB_NAME",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_LINE_BYTES",
    "AddResult",
    "EventProblem",
    "EventRecord",
    "EventStore",
    "IngestReport",
    "QueryRecord",
    "Record",
    "RetentionPolicy",
    "canonical_json",
    "derive_event_id",
    "format_timestamp",
    "iter_parsed",
    "iter_records",
    "parse_record",
    "parse_timestamp",
    "parse_values",
    "to_ubi",
]
