-- Kasparro warehouse, version 7: what each run's payloads looked like, and how they drifted.
--
-- schema_observations: per run, source, endpoint and field (a dotted path into the record), the
--     JSON types seen (with counts), in how many records the field was present and null, and a
--     sample of its values keyed by the record's asset id (JSON text), which the next run's
--     comparison reads to judge renames and domain changes (flows/drift).
-- drift_events: what the comparison of a run's observation with the source's contract and its
--     previous observation found. drift_class: field_added | field_removed | type_changed |
--     nullability_changed | probable_rename | domain_changed. policy: what was done about it
--     (evolve | warn | quarantine | fail); severity: info (evolve) | warning (warn, quarantine)
--     | error (fail). acknowledged_*: an operator's acknowledgement (POST
--     /api/v1/drift/{id}/acknowledge, applied by the next run); an acknowledged event no longer
--     raises the alarm. event_id is derived from (run, source, endpoint, field, class), so a
--     retried run writes the same events again instead of new ones.
create table schema_observations (
    run_id varchar not null,
    source varchar not null,
    endpoint varchar not null,
    field varchar not null,
    records integer not null,
    present integer not null,
    nulls integer not null,
    types varchar not null,
    sample varchar not null,
    observed_at timestamptz not null
);

create table drift_events (
    event_id varchar primary key,
    run_id varchar not null,
    source varchar not null,
    endpoint varchar not null,
    field varchar not null,
    drift_class varchar not null,
    related_field varchar,
    confidence double,
    required boolean not null,
    policy varchar not null,
    severity varchar not null,
    detail varchar not null,
    affected integer not null default 0,
    detected_at timestamptz not null,
    acknowledged_at timestamptz,
    acknowledged_by varchar,
    acknowledged_note varchar
);
