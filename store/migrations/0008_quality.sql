-- Kasparro warehouse, version 8: the data-quality checks of each source's load in each run.
--
-- quality_checks: one row per anomaly found (store/quality.py has the checks and thresholds):
--     per field (market_cap_mismatch, supply_above_max, stale_records, duplicate_keys,
--     null_rate_spike, out_of_range), across runs (price_jump, disappeared, count_drop) and
--     across sources (consensus_deviation, and consensus_outlier_source when most of a source's
--     coins deviate) and stablecoin_off_peg (a US dollar stablecoin far from 1: a capture in
--     another currency). severity: info | warning | error.
--     observed / expected: the values compared, as text (exact for money).
create table quality_checks (
    run_id varchar not null,
    source varchar not null,
    check_name varchar not null,
    severity varchar not null,
    field varchar,
    coin_id varchar,
    source_asset_id varchar,
    observed varchar,
    expected varchar,
    detail varchar not null,
    detected_at timestamptz not null
);
