-- Kasparro warehouse, version 4: what each source delivered, by identity and asset by asset.
--
-- run_sources.delivery_sha256: the sha256 of the payloads a source's extract kept in the raw zone
--     (each page's or file's sha256, in fetch order) and of the code that derives rows from them.
--     Two runs with the same value received the same bytes and read them the same way.
-- run_sources.repeat_of: set when the delivery equals that of the source's previous load (that
--     run's id): the payloads are kept in the raw zone as ever, but not transformed or merged
--     again; the counts and run_seen rows are those the previous load derived, every row
--     unchanged.
-- run_sources.repeatable_until: when a verdict of the load may turn if the same bytes are read
--     again (a record observed in the future, a daily value of a day not over): no run repeats
--     the load from then on. Null: no verdict depends on the moment of reading.
--
-- run_seen: what a source delivered in a run, one row per asset (natural key: run_id, source,
-- source_asset_id): its latest valid observation, unchanged ones included, a pointer into quotes
-- (coin_id, source, observed_at) that run comparisons follow. It was run_sources.seen, a list
-- per row; with DuckDB 1.5.6 every commit to run_sources (which has a primary key) then cost
-- more with each list stored: 10k-asset lists took a commit from 8 to 34 ms over 40 runs, while
-- a table without a key stays flat. Rows are only appended, a run's rows replaced whole in the
-- transaction that writes its ledger row (store/runs.py), so it needs no key to stay unique.
alter table run_sources add column delivery_sha256 varchar;
alter table run_sources add column repeat_of varchar;
alter table run_sources add column repeatable_until timestamptz;

create table run_seen (
    run_id varchar not null,
    source varchar not null,
    source_asset_id varchar not null,
    coin_id varchar not null,
    observed_at timestamptz not null
);

insert into run_seen
select run_id, source, s.source_asset_id, s.coin_id, s.observed_at
from (select run_id, source, unnest(seen) as s from run_sources)
order by run_id, source, s.source_asset_id;

alter table run_sources drop column seen;
