-- Kasparro warehouse, version 1.
--
-- Natural keys (documented in the README; enforced by the loaders, which dedupe every batch and
-- MERGE on them):
--   coins            (coin_id)
--   coin_source_ids  (source, source_asset_id)
--   quotes           (coin_id, source, observed_at)
--   quarantine       (source, record_sha256, reason)
--   checkpoints      (source, stream)
--
-- quotes has no PRIMARY KEY on purpose: in DuckDB a MERGE into a table with one is ~2.5x slower.
-- Money columns are DECIMAL(38, 18): parsed exactly from the text served, never via a float.
-- Every timestamp is TIMESTAMPTZ in UTC.

-- A coin's symbol and name are those of its asset from the first source in source order
-- (coingecko, coinpaprika, coincap, csv), whatever order the assets arrived in.
create table coins (
    coin_id varchar primary key,
    symbol varchar not null,
    name varchar not null,
    first_seen_at timestamptz not null,
    created_by_run varchar not null
);

-- last_snapshot_at is the newest snapshot observation loaded for the asset: a snapshot record
-- not newer than it is unchanged and written nowhere.
create table coin_source_ids (
    source varchar not null,
    source_asset_id varchar not null,
    coin_id varchar not null,
    symbol varchar not null,
    name varchar not null,
    match_key varchar not null,
    method varchar not null,
    confidence double not null,
    evidence varchar not null,
    first_seen_at timestamptz not null,
    last_seen_at timestamptz not null,
    last_snapshot_at timestamptz,
    decided_by_run varchar not null,
    primary key (source, source_asset_id)
);

-- kind: 'snapshot' (a live listing) or 'history' (a daily history row, from an API or a CSV);
-- a history row never overwrites a snapshot row.
create table quotes (
    coin_id varchar not null,
    source varchar not null,
    observed_at timestamptz not null,
    kind varchar not null,
    source_asset_id varchar not null,
    symbol varchar not null,
    name varchar not null,
    price_usd decimal(38, 18) not null,
    market_cap_usd decimal(38, 18),
    volume_24h_usd decimal(38, 18),
    pct_change_24h double,
    circulating_supply double,
    total_supply double,
    max_supply double,
    rank integer,
    run_id varchar not null,
    raw_file varchar not null,
    raw_record integer not null
);

create table quarantine (
    source varchar not null,
    record_sha256 varchar not null,
    reason varchar not null,
    detail varchar not null,
    source_asset_id varchar,
    record varchar,
    raw_file varchar not null,
    raw_record integer not null,
    first_run_id varchar not null
);

-- mode: 'snapshot' (the listings) or 'history' (a daily-history backfill).
create table runs (
    run_id varchar primary key,
    flow_run_id varchar,
    mode varchar not null default 'snapshot',
    started_at timestamptz not null,
    finished_at timestamptz,
    status varchar not null,
    sources varchar[] not null,
    replay_dir varchar,
    error varchar
);

-- seen: what the source delivered in this run (its latest valid observation of each asset,
-- unchanged ones included), a pointer into quotes that run comparisons read.
create table run_sources (
    run_id varchar not null,
    source varchar not null,
    status varchar not null,
    requests integer not null default 0,
    fetched integer not null default 0,
    valid integer not null default 0,
    quarantined integer not null default 0,
    duplicates integer not null default 0,
    inserted integer not null default 0,
    updated integer not null default 0,
    unchanged integer not null default 0,
    started_at timestamptz,
    finished_at timestamptz,
    extract_seconds double,
    transform_seconds double,
    load_seconds double,
    error varchar,
    warnings varchar[] not null default [],
    seen struct(source_asset_id varchar, coin_id varchar, observed_at timestamptz)[],
    primary key (run_id, source)
);

create table checkpoints (
    source varchar not null,
    stream varchar not null,
    position varchar not null,
    run_id varchar not null,
    updated_at timestamptz not null,
    primary key (source, stream)
);
