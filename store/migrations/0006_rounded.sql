-- Kasparro warehouse, version 6: how many money values a source's load stored rounded.
--
-- run_sources.rounded: money values (price, market cap, volume) of the loaded quotes written as
--     float noise, a binary float printed in full (0.00020473099721129984, flows/transform/
--     quotes.py float_noise), that DECIMAL(38,18) cannot hold: stored rounded half to even to 18
--     places, their exact text kept in the raw zone (quotes.raw_file, quotes.raw_record). A
--     value a source stated as a decimal is never rounded: it fits or is quarantined.
--     Rows written before this version read 0 (DuckDB 1.5 cannot add a column with a not null
--     constraint; the loader always writes a number).
alter table run_sources add column rounded integer default 0;
