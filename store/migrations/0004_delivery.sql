-- Kasparro warehouse, version 4: what each source delivered, by identity.
--
-- run_sources.delivery_sha256: the sha256 of the payloads a source's extract kept in the raw zone
--     (each page's or file's sha256, in fetch order) and of the code that derives rows from them.
--     Two runs with the same value received the same bytes and read them the same way.
-- run_sources.repeat_of: set when the delivery equals that of the source's previous load (that
--     run's id): the payloads are kept in the raw zone as ever, but not transformed or merged
--     again; the counts and `seen` are those the previous load derived, with every row unchanged.
alter table run_sources add column delivery_sha256 varchar;
alter table run_sources add column repeat_of varchar;
