"""Reviewing and correcting resolution over HTTP: the review queue, token-protected decisions
that land in the inbox (never in the warehouse), decision outcomes, and alias redirects."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from litestar.testing import TestClient

from flows.rebuild import rebuild_from_raw
from flows.resolution import read_overrides
from flows.sources import SOURCE_NAMES
from kasparro.cli import main
from store.connection import open_read_only, open_warehouse, warehouse
from store.resolution import Decision, alias_target, apply_pending, import_inbox, write_inbox
from store.settings import DECISIONS_INBOX
from store.snapshot import publish_snapshot
from tests.conftest import DEMO_DIR, REPO
from tests.helpers import ingest_without_prefect
from tests.store.resolution.test_decisions import T0, seed
from tests.web.conftest import Published
from web.app import create_app
from web.settings import WebSettings

Client = TestClient  # type: ignore[type-arg]
TOKEN = "s3cret-decisions-token"  # noqa: S105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "/api/v1/resolution/decisions"
MERGE = {
    "action": "merge",
    "coin_id": "eth-ethereum",
    "other_coin_id": "eth-ether",
    "decided_by": "ops@example.com",
    "note": "the same asset",
}


@pytest.fixture(scope="module")
def small_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published snapshot of a hand-built warehouse: coins with review candidates, an applied
    merge (eth-ethereum-csv is an alias of eth-ether) and a refused one."""
    data_dir = tmp_path_factory.mktemp("small")
    inbox = data_dir / DECISIONS_INBOX
    con = open_warehouse(data_dir / "warehouse.duckdb")
    try:
        seed(con)
        for candidate, confidence, status in (
            ("btc-bitcoin", 0.55, "pending"),
            ("weth-wrapped-ether", 0.65, "pending"),
            ("eth-ethereum-csv", 0.9, "rejected"),
        ):
            con.execute(
                """
                insert into resolution_review values (
                    'coincap', 'ethereum', ?, 'eth-ether', 'symbol_name_market', ?,
                    '{"symbol": "ETH"}', ?, 'r1', ?, null, null
                )
                """,
                [candidate, confidence, status, T0],
            )
        for minutes, fields in (
            (1, {"coin_id": "eth-ether", "other_coin_id": "eth-ethereum-csv"}),
            (2, {"coin_id": "eth-ethereum", "other_coin_id": "weth-wrapped-ether"}),
        ):
            write_inbox(
                inbox,
                Decision(
                    decision_id=str(uuid.uuid4()),
                    action="merge",
                    decided_by="ops@example.com",
                    decided_at=T0 + timedelta(days=1, minutes=minutes),
                    **fields,
                ),
            )
        import_inbox(con, inbox)
        apply_pending(con, "r2", list(SOURCE_NAMES))
        con.execute("checkpoint")
    finally:
        con.close()
    publish_snapshot(
        data_dir / "warehouse.duckdb", data_dir / "serving.duckdb", sources=SOURCE_NAMES
    )
    return data_dir / "serving.duckdb"


@pytest.fixture
def api_data_dir(small_snapshot: Path, tmp_path: Path) -> Path:
    """A data directory of this test's own holding the small snapshot (and an empty inbox)."""
    path = tmp_path / "data"
    path.mkdir()
    shutil.copyfile(small_snapshot, path / "serving.duckdb")
    return path


def client_for(data_dir: Path, token: str | None = TOKEN) -> Client:
    settings = WebSettings(decisions_token=token)
    return TestClient(app=create_app(settings, snapshot_path=data_dir / "serving.duckdb"))


@pytest.fixture
def client(api_data_dir: Path) -> Iterator[Client]:
    with client_for(api_data_dir) as test_client:
        yield test_client


def inbox_files(data_dir: Path) -> list[Path]:
    inbox = data_dir / DECISIONS_INBOX
    return sorted(inbox.glob("*.json")) if inbox.exists() else []


# --- the token -----------------------------------------------------------------------------------


def test_decisions_are_disabled_until_a_token_is_configured(api_data_dir: Path) -> None:
    with client_for(api_data_dir, token=None) as client:
        response = client.post(URL, json=MERGE, headers=AUTH)

    assert response.status_code == 403
    assert response.json()["detail"] == ("decisions are disabled: set KASPARRO_API_DECISIONS_TOKEN")
    assert inbox_files(api_data_dir) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-some-length"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_a_missing_or_wrong_token_is_401_and_writes_nothing(
    client: Client, api_data_dir: Path, headers: dict[str, str]
) -> None:
    response = client.post(URL, json=MERGE, headers=headers)

    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]
    assert TOKEN not in response.text
    assert inbox_files(api_data_dir) == []


def test_the_token_is_checked_before_the_body(client: Client) -> None:
    assert client.post(URL, json={"action": "nonsense"}).status_code == 401


# --- accepted decisions go to the inbox ----------------------------------------------------------


def test_a_valid_decision_is_accepted_and_written_to_the_inbox(
    client: Client, api_data_dir: Path
) -> None:
    before = datetime.now(UTC)
    response = client.post(URL, json=MERGE, headers=AUTH)

    assert response.status_code == 202, response.text
    body = response.json()
    assert uuid.UUID(body["decision_id"]).version == 4
    assert body["outcome"] == "pending"
    assert body["applies"] == "on the next ingest run"
    assert {k: body[k] for k in MERGE} == MERGE
    assert datetime.fromisoformat(body["decided_at"]) >= before
    (written,) = inbox_files(api_data_dir)
    assert written.name.endswith(f"-{body['decision_id']}.json")
    queued = msgspec.json.decode(written.read_bytes(), type=Decision)
    assert queued.decision_id == body["decision_id"]
    assert (queued.action, queued.coin_id, queued.other_coin_id) == (
        "merge",
        "eth-ethereum",
        "eth-ether",
    )
    assert (queued.decided_by, queued.note) == ("ops@example.com", "the same asset")
    # Atomic write: no temporary file is left beside it.
    assert [p.name for p in written.parent.iterdir()] == [written.name]


@pytest.mark.parametrize(
    "body",
    [
        {
            "action": "accept",
            "source": "coincap",
            "source_asset_id": "ethereum",
            "coin_id": "eth-ethereum",
            "decided_by": "ops",
        },
        {
            "action": "reject",
            "source": "coincap",
            "source_asset_id": "ethereum",
            "coin_id": "btc-bitcoin",
            "decided_by": "ops",
        },
        {"action": "split", "coin_id": "eth-ethereum-csv", "decided_by": "ops"},
    ],
)
def test_every_action_is_accepted(client: Client, api_data_dir: Path, body: dict[str, Any]) -> None:
    response = client.post(URL, json=body, headers=AUTH)

    assert response.status_code == 202, response.text
    assert len(inbox_files(api_data_dir)) == 1


# --- refused decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({**MERGE, "decided_by": None}, 400, "decided_by"),
        ({k: v for k, v in MERGE.items() if k != "decided_by"}, 400, "decided_by"),
        ({**MERGE, "decided_by": "  "}, 400, "decided_by"),
        ({**MERGE, "action": "delete"}, 400, "delete"),
        ({k: v for k, v in MERGE.items() if k != "other_coin_id"}, 400, "other_coin_id"),
        ({**MERGE, "surprise": 1}, 400, "surprise"),
        ({**MERGE, "other_coin_id": "eth-ethereum"}, 422, "other_coin_id must differ"),
        ({**MERGE, "other_coin_id": "no-such-coin"}, 404, "other_coin_id: no coin"),
        ({**MERGE, "coin_id": "no-such-coin"}, 404, "coin_id: no coin"),
        (
            {**MERGE, "other_coin_id": "weth-wrapped-ether"},
            409,
            "two coingecko assets in one coin",
        ),
        (
            {**MERGE, "other_coin_id": "eth-ethereum-csv"},
            409,
            "merged into 'eth-ether'",
        ),
        (
            {
                "action": "accept",
                "source": "coingecko",
                "source_asset_id": "weth",
                "coin_id": "eth-ethereum",
                "decided_by": "ops",
            },
            409,
            "at most one asset per source",
        ),
        (
            {
                "action": "accept",
                "source": "coingecko",
                "source_asset_id": "dogecoin",
                "coin_id": "eth-ethereum",
                "decided_by": "ops",
            },
            404,
            "source_asset_id: no coingecko asset 'dogecoin'",
        ),
        ({"action": "split", "coin_id": "eth-ethereum", "decided_by": "ops"}, 409, "not an alias"),
        ({"action": "split", "coin_id": "nothing", "decided_by": "ops"}, 404, "no alias"),
    ],
)
def test_an_invalid_decision_is_refused_naming_what_is_wrong(
    client: Client, api_data_dir: Path, body: dict[str, Any], status: int, says: str
) -> None:
    response = client.post(URL, json=body, headers=AUTH)

    assert response.status_code == status, response.text
    assert says in response.text
    assert inbox_files(api_data_dir) == []


# --- listings ------------------------------------------------------------------------------------


def test_the_review_queue_lists_pending_candidates_most_confident_first(client: Client) -> None:
    page = client.get("/api/v1/resolution/review").json()

    assert page["total"] == 3
    assert [(c["candidate_coin_id"], c["confidence"]) for c in page["items"]] == [
        ("eth-ethereum", 0.8),
        ("weth-wrapped-ether", 0.65),
        ("btc-bitcoin", 0.55),
    ]
    first = page["items"][0]
    assert first["evidence"] == {"price_ratio": 1.001}
    assert (first["source"], first["source_asset_id"], first["coin_id"]) == (
        "coincap",
        "ethereum",
        "eth-ether",
    )
    second = client.get("/api/v1/resolution/review?limit=1&offset=1").json()
    assert [c["candidate_coin_id"] for c in second["items"]] == ["weth-wrapped-ether"]
    assert second["total"] == 3
    assert client.get("/api/v1/resolution/review?limit=0").status_code == 400


def test_the_decision_log_shows_outcomes_newest_first(client: Client) -> None:
    page = client.get("/api/v1/resolution/decisions").json()

    assert page["total"] == 2
    refused, applied = page["items"]
    assert (refused["other_coin_id"], refused["outcome"]) == ("weth-wrapped-ether", "refused")
    assert "coingecko" in refused["detail"]["reason"]
    assert (applied["other_coin_id"], applied["outcome"]) == ("eth-ethereum-csv", "applied")
    assert applied["detail"]["moved"][0]["source_asset_id"] == "ETH:Ethereum"
    assert applied["applied_by_run"] == "r2"
    only = client.get("/api/v1/resolution/decisions?outcome=applied").json()
    assert [d["decision_id"] for d in only["items"]] == [applied["decision_id"]]
    assert client.get("/api/v1/resolution/decisions?outcome=maybe").status_code == 400


# --- aliases -------------------------------------------------------------------------------------


def test_a_merged_coin_redirects_permanently_to_the_survivor(client: Client) -> None:
    response = client.get("/api/v1/coins/eth-ethereum-csv", follow_redirects=False)

    assert response.status_code == 301
    assert response.headers["location"] == "/api/v1/coins/eth-ether"
    followed = client.get("/api/v1/coins/eth-ethereum-csv")
    assert followed.status_code == 200
    assert followed.json()["coin_id"] == "eth-ether"
    assert ("csv", "ETH:Ethereum") in {
        (s["source"], s["source_asset_id"]) for s in followed.json()["source_ids"]
    }


def test_paths_below_a_merged_coin_redirect_too(client: Client) -> None:
    response = client.get("/api/v1/coins/eth-ethereum-csv/prices?x=1", follow_redirects=False)

    assert response.status_code == 301
    assert response.headers["location"] == "/api/v1/coins/eth-ether/prices?x=1"


def test_an_unknown_coin_is_still_404(client: Client) -> None:
    response = client.get("/api/v1/coins/never-was", follow_redirects=False)

    assert response.status_code == 404


def test_a_snapshot_published_before_aliases_existed_still_serves_coins(tmp_path: Path) -> None:
    """The API may be upgraded before the next run publishes a snapshot with coin_aliases."""
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    try:
        seed(con)
        con.execute("drop table coin_aliases")
        con.execute("checkpoint")
    finally:
        con.close()
    publish_snapshot(
        tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb", sources=SOURCE_NAMES
    )

    with client_for(tmp_path) as client:
        assert client.get("/api/v1/coins/btc-bitcoin").status_code == 200
        assert client.get("/api/v1/coins/never-was").status_code == 404


def test_a_snapshot_published_before_the_review_tables_is_a_503_saying_what_to_run(
    api_data_dir: Path,
) -> None:
    with duckdb.connect(str(api_data_dir / "serving.duckdb")) as con:
        con.execute("drop table resolution_review")
        con.execute("drop table resolution_decisions")
    with client_for(api_data_dir) as client:
        for url in ("/api/v1/resolution/review", "/api/v1/resolution/decisions"):
            answer = client.get(url)
            assert answer.status_code == 503
            assert "run `kasparro ingest`" in answer.json()["detail"]


def test_the_openapi_document_describes_decisions_and_redirects(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()

    post = spec["paths"][URL]["post"]
    assert post["security"] == [{"decisionsToken": []}]
    assert {"401", "403", "404", "409", "422"} <= set(post["responses"])
    variants = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {v["$ref"].rsplit("/", 1)[1] for v in variants} == {
        "AcceptLink",
        "RejectLink",
        "MergeCoins",
        "SplitCoin",
    }
    assert spec["components"]["securitySchemes"]["decisionsToken"]["scheme"] == "bearer"
    assert "301" in spec["paths"]["/api/v1/coins/{coin_id}"]["get"]["responses"]


# --- end to end: POST, the next run applies it, a rebuild keeps it -------------------------------


def _disjoint_coins(serving: Path) -> tuple[str, str]:
    """Two coins of the demo that no source lists both of (so they may merge): the one with the
    most sources survives."""
    con = open_read_only(serving)
    try:
        rows = con.execute(
            """
            with held as (
                select coin_id, list(distinct source order by source) as sources
                from coin_source_ids
                group by coin_id
            )
            select s.coin_id, o.coin_id
            from held as s
            join held as o
                on s.coin_id <> o.coin_id and not list_has_any(s.sources, o.sources)
            order by len(s.sources) desc, len(o.sources) desc, s.coin_id, o.coin_id
            limit 1
            """
        ).fetchall()
    finally:
        con.close()
    assert rows, "the demo has no two coins without a common source"
    return rows[0]


def _links_and_quotes(con: duckdb.DuckDBPyConnection, coin_id: str) -> tuple[set[Any], int]:
    links = set(
        con.execute(
            "select source, source_asset_id from coin_source_ids where coin_id = ?", [coin_id]
        ).fetchall()
    )
    (quotes,) = con.execute("select count(*) from quotes where coin_id = ?", [coin_id]).fetchall()[
        0
    ]
    return links, int(quotes)


def _quotes_of(con: duckdb.DuckDBPyConnection, links: set[Any], coin_id: str) -> int:
    total = 0
    for source, asset in links:
        (n,) = con.execute(
            "select count(*) from quotes where source = ? and source_asset_id = ? and coin_id = ?",
            [source, asset, coin_id],
        ).fetchall()[0]
        total += int(n)
    return total


def test_a_merge_posted_to_the_api_applies_on_the_next_run_and_survives_a_rebuild(
    published: Published, data_dir: Path, tmp_path: Path
) -> None:
    """POST a merge of two demo coins, run again: the old id redirects and its quotes are under
    the survivor. A rebuild applies it again, and exported as overrides it survives a fresh
    warehouse."""
    shutil.copytree(published.data_dir, data_dir)
    serving = data_dir / "serving.duckdb"
    survivor, other = _disjoint_coins(serving)
    con = open_read_only(serving)
    try:
        moved_links, moved_quotes = _links_and_quotes(con, other)
    finally:
        con.close()
    assert moved_quotes > 0

    with client_for(data_dir) as client:
        posted = client.post(
            URL,
            json={
                "action": "merge",
                "coin_id": survivor,
                "other_coin_id": other,
                "decided_by": "ops@example.com",
            },
            headers=AUTH,
        )
        assert posted.status_code == 202, posted.text
        (decisions_file,) = [p.name for p in inbox_files(data_dir)]
        # Nothing changes before the next run.
        assert client.get(f"/api/v1/coins/{other}").status_code == 200

        # The next run: the flow applies the inbox right after opening the warehouse
        # (flows.ingest._apply_decisions), then loads the sources and publishes.
        run_id = "20261124T140000Z-merge0"
        with warehouse(data_dir / "warehouse.duckdb") as wh:
            assert import_inbox(wh, data_dir / DECISIONS_INBOX) == 1
            (applied,) = apply_pending(wh, run_id, list(SOURCE_NAMES))
            assert applied.outcome == "applied", applied.detail
        overrides = read_overrides(REPO / "data" / "asset_overrides.csv")
        ingest_without_prefect(DEMO_DIR, data_dir, run_id=run_id, overrides=overrides)

        redirect = client.get(f"/api/v1/coins/{other}", follow_redirects=False)
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"/api/v1/coins/{survivor}"
        detail = client.get(f"/api/v1/coins/{survivor}").json()
        assert moved_links <= {(s["source"], s["source_asset_id"]) for s in detail["source_ids"]}
        log = client.get(f"{URL}?outcome=applied").json()
        assert [d["decision_id"] for d in log["items"]] == [posted.json()["decision_id"]]

    con = open_read_only(serving)
    try:
        assert _links_and_quotes(con, other) == (set(), 0)
        assert _quotes_of(con, moved_links, survivor) >= moved_quotes
    finally:
        con.close()

    # A rebuild re-derives every table from the raw zone and applies the decision again, before
    # the run that applied it.
    rebuild_from_raw(data_dir, read_overrides(REPO / "data" / "asset_overrides.csv"))
    con = open_read_only(serving)
    try:
        assert alias_target(con, other) == survivor
        assert _links_and_quotes(con, other) == (set(), 0)
        assert _quotes_of(con, moved_links, survivor) >= moved_quotes
        assert con.execute(
            "select outcome, applied_by_run from resolution_decisions"
        ).fetchall() == [("applied", run_id)]
    finally:
        con.close()
    # The imported file is archived, not deleted: it is a record of the decision.
    assert [p.name for p in (data_dir / "decisions" / "imported").iterdir()] == [decisions_file]

    # Exported into (a copy of) the overrides file, the decision survives a fresh warehouse.
    overrides_file = tmp_path / "asset_overrides.csv"
    shutil.copyfile(REPO / "data" / "asset_overrides.csv", overrides_file)
    curated = overrides_file.read_text().splitlines()
    assert main(["resolution", "export-overrides", "--out", str(overrides_file)]) == 0
    exported = overrides_file.read_text().splitlines()
    assert exported[: len(curated)] == curated
    assert {tuple(line.split(",")[:3]) for line in exported[len(curated) :]} == {
        (source, asset, survivor) for source, asset in moved_links
    }
    assert all(posted.json()["decision_id"] in line for line in exported[len(curated) :])
    assert main(["resolution", "export-overrides", "--out", str(overrides_file)]) == 0
    assert overrides_file.read_text().splitlines() == exported  # idempotent
    fresh = tmp_path / "fresh"
    ingest_without_prefect(
        DEMO_DIR, fresh, run_id="20261124T150000Z-fresh0", overrides=read_overrides(overrides_file)
    )
    con = open_read_only(fresh / "serving.duckdb")
    try:
        assert _links_and_quotes(con, survivor)[0] >= moved_links
    finally:
        con.close()


def test_export_overrides_fails_clearly_without_a_snapshot(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides_file = tmp_path / "asset_overrides.csv"

    assert main(["resolution", "export-overrides", "--out", str(overrides_file)]) == 2

    assert "kasparro ingest" in capsys.readouterr().err
    assert not overrides_file.exists()
