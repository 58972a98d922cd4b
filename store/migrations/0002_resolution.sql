-- Kasparro warehouse, version 2: identity evidence, the review queue, operator decisions and
-- coin aliases (see flows/resolution.py and store/decisions.py).
--
-- Natural keys:
--   asset_contracts        (source, source_asset_id, chain, address)
--   resolution_review      (source, source_asset_id, candidate_coin_id)
--   resolution_decisions   (decision_id)
--   coin_aliases           (alias_coin_id)

-- A contract address a source publishes for one of its assets. chain is the canonical chain id
-- of data/platforms.csv (the source's own platform id is kept beside it); address is lowercased
-- on EVM chains (0x..., case carries only a checksum there) and kept as served elsewhere.
create table asset_contracts (
    source varchar not null,
    source_asset_id varchar not null,
    chain varchar not null,
    address varchar not null,
    source_platform varchar not null,
    first_seen_run varchar not null,
    primary key (source, source_asset_id, chain, address)
);

-- Candidate links too weak to merge on their own. The asset keeps a coin of its own until an
-- operator accepts (the asset moves to candidate_coin_id) or rejects the candidate.
-- status: 'pending' | 'accepted' | 'rejected' | 'superseded' (a decision answered it without
-- naming it: a merge put the two together, or an accept chose another coin).
create table resolution_review (
    source varchar not null,
    source_asset_id varchar not null,
    candidate_coin_id varchar not null,
    coin_id varchar not null,
    method varchar not null,
    confidence double not null,
    evidence varchar not null,
    status varchar not null default 'pending',
    proposed_by_run varchar not null,
    proposed_at timestamptz not null,
    decided_by varchar,
    decision_id varchar,
    primary key (source, source_asset_id, candidate_coin_id)
);

-- Operator decisions, in the order they were taken; each is applied once, by the next run.
-- action: 'accept' | 'reject' (source, source_asset_id, coin_id: a link),
--         'merge' (coin_id survives, other_coin_id becomes its alias),
--         'split' (coin_id: an alias to restore as a coin of its own).
-- outcome: 'pending' until applied, then 'applied' or 'refused'; detail says why (JSON).
create table resolution_decisions (
    decision_id varchar primary key,
    action varchar not null,
    source varchar,
    source_asset_id varchar,
    coin_id varchar not null,
    other_coin_id varchar,
    note varchar not null default '',
    decided_by varchar not null,
    decided_at timestamptz not null,
    outcome varchar not null default 'pending',
    detail varchar not null default '{}',
    applied_at timestamptz,
    applied_by_run varchar
);

-- A coin merged into another: its old id still answers (the API redirects), and moved lists the
-- (source, source_asset_id) links that moved with it, which a split moves back.
create table coin_aliases (
    alias_coin_id varchar primary key,
    coin_id varchar not null,
    symbol varchar not null,
    name varchar not null,
    first_seen_at timestamptz not null,
    created_by_run varchar not null,
    moved struct(source varchar, source_asset_id varchar)[] not null,
    decision_id varchar not null,
    merged_at timestamptz not null
);
