-- Kasparro warehouse, version 3: the consensus price view (read by store/consensus.py and
-- GET /api/v1/coins/{coin_id}/prices; analysts opening the DuckDB file query it directly).
--
-- coin_prices_latest: one row per (coin_id, source) holding that source's latest SNAPSHOT price
-- (history rows are daily closes, not what a source lists now, and never count), beside the
-- coin's consensus across its sources:
--   sources              how many sources have a snapshot of the coin
--   consensus_price_usd  the median of the per-source latest prices, DECIMAL(38, 18): exact (an
--                        even count averages the two middle prices in decimal, rounded half away
--                        from zero to 18 places; DuckDB's median() interpolates DECIMALs through
--                        a DOUBLE, so it is not used)
--   spread               (max - min) / consensus across the sources' latest prices, DOUBLE
--   deviation            (price_usd - consensus) / consensus, signed, DOUBLE
--   deviates             abs(deviation) > 0.05
--   newest_observed_at   the coin's newest latest-observation across its sources
--   stale                observed_at more than 24 hours before newest_observed_at
--
-- Why 5%: sources quoting the same market at about the same moment agree within a fraction of a
-- percent for any liquid coin (arbitrage keeps them there), and even thin coins rarely drift
-- beyond a few percent. A source 5% away is not noise: it is stale or wrong, quotes a different
-- asset under the same symbol (a mis-resolved link), or captured the price in another currency.
-- With two sources the median is their midpoint, so both are flagged once they are more than
-- ~10% apart: two sources cannot say which of them is wrong.
-- Why 24 hours: sources refresh their listings every few minutes; a latest observation a day
-- behind the coin's newest one means the source stopped listing the coin (or the asset link
-- moved). A stale price still counts in the median; the flag says to distrust it.
-- With one source: consensus = its price, spread 0, deviation 0, nothing flagged.
--
-- Cost: one scan of the snapshot rows of quotes grouped by (coin_id, source) with arg_max, then
-- a small per-coin aggregate. DuckDB materialises `latest` (read twice), so even a query for one
-- coin groups every coin: on 1M quotes ~80 ms for every coin, ~30 ms for one; on 10M ~0.6 s and
-- ~0.35 s (2 cores). Inlining it or using window functions measured slower.
create view coin_prices_latest as
with snapshots as (
    select
        coin_id,
        source,
        source_asset_id,
        observed_at,
        price_usd
    from quotes
    where kind = 'snapshot'
),

latest as (
    -- (coin_id, source, observed_at) is the natural key of quotes: arg_max has no ties to break.
    select
        coin_id,
        source,
        arg_max(source_asset_id, observed_at) as source_asset_id,
        max(observed_at) as observed_at,
        arg_max(price_usd, observed_at) as price_usd
    from snapshots
    group by coin_id, source
),

per_coin as (
    select
        coin_id,
        count(*) as sources,
        list_sort(list(price_usd)) as prices,
        min(price_usd) as min_price_usd,
        max(price_usd) as max_price_usd,
        max(observed_at) as newest_observed_at
    from latest
    group by coin_id
),

consensus as (
    -- The middle price (odd count: both indexes name it) or the mean of the two middle ones.
    -- Exact below 10^19 USD: the half is taken at DECIMAL(38, 19).
    select
        coin_id,
        sources,
        min_price_usd,
        max_price_usd,
        newest_observed_at,
        ((prices[(sources + 1) // 2] + prices[sources // 2 + 1]) * 0.5)::decimal(38, 18)
            as consensus_price_usd
    from per_coin
),

final as (
    select
        l.coin_id,
        l.source,
        l.source_asset_id,
        l.observed_at,
        l.price_usd,
        c.sources,
        c.consensus_price_usd,
        (c.max_price_usd - c.min_price_usd)::double
            / nullif(c.consensus_price_usd, 0)::double as spread,
        (l.price_usd - c.consensus_price_usd)::double
            / nullif(c.consensus_price_usd, 0)::double as deviation,
        coalesce(abs(deviation) > 0.05, false) as deviates,
        c.newest_observed_at,
        l.observed_at < c.newest_observed_at - interval 24 hours as stale
    from latest as l
    join consensus as c using (coin_id)
)

select * from final;
