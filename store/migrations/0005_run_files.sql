-- Kasparro warehouse, version 5: the raw files each committed load read.
--
-- run_files: one row per raw file (its path below the raw root) a source's load read in a run,
-- written in the transaction that commits the load's data, so it lists exactly what the
-- warehouse holds: a source that failed (rolled back), a run that died before a source
-- committed, and a repeated delivery (run_sources.repeat_of) have no rows. A source may commit
-- and still be reported failed (a CSV file with an unknown header: the other files load); its
-- rows list the files that loaded. `kasparro rebuild --from-raw` replays these files and no
-- others (flows/rebuild.py). Rows are only appended (a resumed run adds the files of its new
-- commit), so it needs no key; the writer keeps (run_id, source, raw_file) unique.
--
-- Loads committed before this version did not list their files: each such load (a row of
-- run_sources with status 'loaded' and no repeat_of) gets one row with raw_file null, read as
-- "the last attempt of every page the run kept in the raw zone for the source", which is what
-- those loads read.
create table run_files (
    run_id varchar not null,
    source varchar not null,
    raw_file varchar
);

insert into run_files
select run_id, source, null
from run_sources
where status = 'loaded' and repeat_of is null
order by run_id, source;
