// The dashboard: fills each section from the JSON API. Sections load independently; one
// failing shows its error in place and leaves the others working.
import { getJSON, quotesOf } from "./api.js";
import { byId, h, replace } from "./dom.js";
import {
  ago, duration, integer, money, percent, signedPercent, sourceColour, utc,
} from "./format.js";
import { drawChart } from "./chart.js";

// Market caps in the table read as $1.82T (the exact figure is in the cell's title).
const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });
function compactUsd(text) {
  return text === null || text === undefined ? "–" : `$${COMPACT.format(Number(text))}`;
}

const state = { coins: [], selected: null, chart: null };

function failure(section, error) {
  console.error(`dashboard: ${section}:`, error);
  return h("p", { class: "error" }, `Could not load ${section}: ${error.message}`);
}

function pill(text, kind) {
  return h("span", { class: `pill ${kind}` }, text);
}

// ---- header and totals ------------------------------------------------------------------

async function loadHeader() {
  const el = byId("snapshot");
  try {
    const health = await getJSON("/health");
    const published = health.snapshot.published_at;
    replace(el,
      pill(health.status, health.status === "ok" ? "ok" : "warn"),
      " snapshot ", published ? h("time", { datetime: published, title: published }, `${utc(published)} UTC`) : "–",
      published ? h("span", { class: "muted" }, ` · ${ago(published)}`) : null);
  } catch (error) {
    replace(el, pill("unavailable", "bad"), ` ${error.message}`);
  }
}

async function loadTotals() {
  const el = byId("kpis");
  try {
    const stats = await getJSON("/api/v1/stats");
    const { totals } = stats;
    const kpi = (label, value, sub) => h("div", { class: "kpi" },
      h("div", { class: "kpi-label" }, label),
      h("div", { class: "kpi-value" }, value),
      h("div", { class: "kpi-sub muted" }, sub));
    const lastOk = stats.sources.map((s) => s.last_success_at).filter(Boolean).sort().at(-1);
    replace(el,
      kpi("Coins", integer(totals.coins), `${stats.sources.length} sources`),
      kpi("Quotes", integer(totals.quotes), "snapshots and daily history"),
      kpi("Runs", integer(totals.runs), lastOk ? `last success ${ago(lastOk)}` : "no success yet"),
      kpi("Quarantined", integer(totals.quarantined), "rows held back with a reason"));
  } catch (error) {
    replace(el, failure("totals", error));
  }
}

// ---- latest prices ------------------------------------------------------------------------

function sourceChip(price, index) {
  const flags = [price.deviates ? "deviates" : null, price.stale ? "stale" : null].filter(Boolean);
  const title = `${price.source} (${price.source_asset_id}): $${money(price.price_usd)}, `
    + `${signedPercent(price.deviation === null ? null : price.deviation * 100, 2)} vs consensus, `
    + `observed ${utc(price.observed_at)} UTC${flags.length ? ` · ${flags.join(", ")}` : ""}`;
  return h("span", {
    class: ["chip", ...flags].join(" "),
    title,
    dataset: { source: price.source, deviates: String(price.deviates), stale: String(price.stale) },
  }, h("i", { class: "dot", dataset: { colour: sourceColour(price.source, index) } }),
  shortName(price.source), flags.length ? ` ${flags.join(" ")}` : null);
}

const SHORT = { coingecko: "gecko", coinpaprika: "paprika", coincap: "cap" };
function shortName(source) {
  return SHORT[source] ?? source;
}

function priceRow(coin, rank) {
  const flagged = coin.prices.some((p) => p.deviates || p.stale);
  const row = h("tr", {
    class: [flagged ? "flagged" : "", coin.coin_id === state.selected ? "selected" : ""].join(" ").trim(),
    tabindex: 0,
    dataset: { coinId: coin.coin_id },
  },
  h("td", { class: "num muted" }, rank),
  h("td", { class: "coin-cell", title: `${coin.name} (${coin.coin_id})` },
    h("span", { class: "symbol" }, coin.symbol), " ", h("span", { class: "muted name" }, coin.name)),
  h("td", { class: "num mono consensus", dataset: { value: coin.consensus_price_usd ?? "" } }, money(coin.consensus_price_usd)),
  h("td", { class: "chips" }, coin.prices.map(sourceChip)),
  h("td", { class: "num spread", dataset: { value: coin.spread ?? "" }, title: coin.spread ?? "" }, percent(coin.spread)),
  h("td", { class: "num", title: coin.market_cap_usd ? `$${money(coin.market_cap_usd)}` : "" }, compactUsd(coin.market_cap_usd)));
  const select = () => selectCoin(coin.coin_id);
  row.addEventListener("click", select);
  row.addEventListener("keydown", (event) => { if (event.key === "Enter") select(); });
  return row;
}

function renderPrices() {
  const needle = byId("coin-filter").value.trim().toLowerCase();
  const shown = state.coins
    .map((coin, i) => [coin, i + 1])
    .filter(([c]) => !needle || [c.symbol, c.name, c.coin_id].some((s) => s.toLowerCase().includes(needle)));
  replace(byId("prices").tBodies[0], shown.map(([coin, rank]) => priceRow(coin, rank)));
  paintDots(byId("prices"));
  const flagged = state.coins.filter((c) => c.prices.some((p) => p.deviates || p.stale)).length;
  replace(byId("prices-foot"),
    `${shown.length} of ${integer(state.total)} listed coins`,
    flagged ? ` · ${flagged} with a deviating or stale source` : " · no source deviates or is stale");
}

// Colours are set through the CSSOM (allowed by a strict Content-Security-Policy), not a style attribute.
function paintDots(root) {
  for (const dot of root.querySelectorAll("i.dot[data-colour]")) dot.style.background = dot.dataset.colour;
}

async function loadPrices() {
  const tbody = byId("prices").tBodies[0];
  try {
    const page = await getJSON("/api/v1/prices", { limit: 1000 });
    state.coins = page.items;
    state.total = page.total;
    if (page.items.length) byId("threshold").textContent = percent(page.items[0].deviation_threshold, 0);
    renderPrices();
    if (page.items.length) await selectCoin(page.items[0].coin_id);
  } catch (error) {
    replace(tbody, h("tr", {}, h("td", { colspan: 6 }, failure("prices", error))));
  }
}

// ---- chart --------------------------------------------------------------------------------

async function selectCoin(coinId) {
  state.selected = coinId;
  for (const row of byId("prices").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.coinId === coinId);
  }
  const coin = state.coins.find((c) => c.coin_id === coinId);
  replace(byId("chart-title"), h("span", { class: "symbol" }, coin.symbol), " ", h("span", { class: "muted name" }, coin.name));
  const meta = byId("chart-meta");
  meta.textContent = "loading…";
  try {
    const { items, complete } = await quotesOf(coinId);
    if (state.selected !== coinId) return; // another coin was picked meanwhile
    const chartEl = byId("chart");
    state.chart = drawChart(chartEl, items, state.chart);
    chartEl.dataset.coinId = coinId;
    chartEl.dataset.points = String(items.length);
    meta.textContent = `${integer(items.length)} quotes${complete ? "" : " (first pages)"} · `
      + `${utc(items[0]?.observed_at)} → ${utc(items.at(-1)?.observed_at)} UTC`;
    replace(byId("source-prices"), h("table", { class: "data compact" },
      h("thead", {}, h("tr", {}, h("th", {}, "Latest snapshot"), h("th", { class: "num" }, "Price (USD)"),
        h("th", { class: "num", title: "deviation from the consensus" }, "Δ"))),
      h("tbody", {}, coin.prices.map((p, i) => h("tr", { dataset: { source: p.source }, title: `observed ${utc(p.observed_at)} UTC` },
        h("td", {}, h("i", { class: "dot", dataset: { colour: sourceColour(p.source, i) } }), " ", p.source),
        h("td", { class: "num mono" }, money(p.price_usd)),
        h("td", { class: `num ${p.deviates ? "bad-text" : "muted"}` },
          p.stale ? pill("stale", "warn") : null, p.deviates ? pill("deviates", "bad") : null, " ",
          signedPercent(p.deviation === null ? null : p.deviation * 100, 2))))),
      h("tfoot", {}, h("tr", {}, h("td", {}, "Consensus (median)"),
        h("td", { class: "num mono" }, money(coin.consensus_price_usd)),
        h("td", { class: "num muted" }, `spread ${percent(coin.spread)}`)))));
    paintDots(byId("source-prices"));
  } catch (error) {
    meta.textContent = "";
    replace(byId("chart"), failure("the chart", error));
  }
}

// ---- runs and comparison ------------------------------------------------------------------

const STATUS_KIND = { completed: "ok", running: "info", failed: "bad", abandoned: "warn" };

function sum(run, field) {
  return run.sources.reduce((total, s) => total + s[field], 0);
}

function runRow(run) {
  const failed = run.sources.filter((s) => s.status === "failed" || s.error);
  return h("tr", { dataset: { runId: run.run_id } },
    h("td", { class: "mono", title: run.flow_run_id ?? "" }, run.run_id),
    h("td", {}, run.mode),
    h("td", {}, pill(run.status, STATUS_KIND[run.status] ?? "info")),
    h("td", { class: "mono" }, utc(run.started_at)),
    h("td", { class: "num" }, duration(run.duration_seconds)),
    h("td", { class: "num" }, integer(sum(run, "fetched"))),
    h("td", { class: "num" }, integer(sum(run, "inserted"))),
    h("td", { class: "num" }, integer(sum(run, "updated"))),
    h("td", { class: "num" }, integer(sum(run, "quarantined"))),
    h("td", { class: failed.length || run.error ? "bad-text" : "muted" },
      failed.length ? failed.map((s) => `${s.source}: ${s.error ?? s.status}`).join("; ")
        : run.error ?? "none"));
}

async function loadRuns() {
  const tbody = byId("runs").tBodies[0];
  try {
    const page = await getJSON("/api/v1/runs", { limit: 100 });
    replace(tbody, page.items.map(runRow));
    byId("runs-meta").textContent = `${page.items.length} run${page.items.length === 1 ? "" : "s"}, newest first`;
    setupCompare(page.items);
  } catch (error) {
    replace(tbody, h("tr", {}, h("td", { colspan: 10 }, failure("runs", error))));
  }
}

function setupCompare(runs) {
  const base = byId("compare-base");
  const head = byId("compare-head");
  const options = () => runs.map((r) => h("option", { value: r.run_id }, `${r.run_id} · ${r.mode}`));
  replace(base, options());
  replace(head, options());
  if (runs.length < 2) {
    replace(byId("compare"), h("p", { class: "muted" },
      "One run so far: a comparison needs two. Run another ingest, then compare."));
    byId("compare-form").querySelector("button").disabled = true;
    return;
  }
  // The newest run against the one before it of the same mode (a history backfill compared
  // with a snapshot run would show every listed coin as removed).
  const previous = runs.slice(1).find((r) => r.mode === runs[0].mode) ?? runs[1];
  head.value = runs[0].run_id;
  base.value = previous.run_id;
  byId("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    compare(base.value, head.value);
  });
  compare(base.value, head.value);
}

function countsTable(sources) {
  const fields = ["fetched", "inserted", "updated", "unchanged", "quarantined"];
  return h("table", { class: "data compact" },
    h("thead", {}, h("tr", {}, h("th", {}, "Source"), fields.map((f) => h("th", { class: "num" }, `Δ ${f}`)))),
    h("tbody", {}, sources.map((s) => h("tr", {},
      h("td", {}, s.source, s.base_status !== s.head_status ? h("span", { class: "muted" }, ` ${s.base_status ?? "–"} → ${s.head_status ?? "–"}`) : null),
      fields.map((f) => {
        const d = s.delta[f] ?? 0;
        return h("td", { class: `num ${d > 0 ? "up" : d < 0 ? "down" : "muted"}`, title: `${s.base[f] ?? 0} → ${s.head[f] ?? 0}` },
          `${d > 0 ? "+" : ""}${integer(d)}`);
      })))));
}

async function compare(baseId, headId) {
  const el = byId("compare");
  if (baseId === headId) {
    replace(el, h("p", { class: "muted" }, "Pick two different runs."));
    return;
  }
  replace(el, h("p", { class: "muted" }, "Comparing…"));
  try {
    const result = await getJSON("/api/v1/runs/compare", { base: baseId, head: headId, top: 5 });
    const dist = result.price_change_distribution;
    const stat = (label, value) => h("div", { class: "stat" }, h("div", { class: "kpi-label" }, label), h("div", { class: "stat-value" }, value));
    replace(el,
      h("div", { class: "stats" },
        stat("Coins added", integer(result.coins_added.length)),
        stat("Coins removed", integer(result.coins_removed.length)),
        stat("Median move", signedPercent(dist.p50, 2)),
        stat("Anomalies", integer(result.anomalies.length))),
      countsTable(result.sources),
      result.top_movers.length ? h("div", {},
        h("h3", {}, "Top movers"),
        h("ul", { class: "movers" }, result.top_movers.map((m) => h("li", {},
          h("span", { class: "symbol" }, m.symbol), " ", h("span", { class: "muted" }, m.name),
          h("span", { class: `num ${m.pct_change >= 0 ? "up" : "down"}` }, signedPercent(m.pct_change, 2)))))) : null,
      result.anomalies.length ? h("div", {},
        h("h3", {}, "Anomalies"),
        h("ul", { class: "anomalies" }, result.anomalies.map((a) => h("li", {},
          pill(a.kind, "warn"), " ", h("span", { class: "mono" }, a.subject), " ", h("span", { class: "muted" }, a.detail))))) : null,
      result.coins_added.length ? h("p", { class: "muted" }, "Added: ",
        result.coins_added.map((c) => c.symbol).join(", ")) : null);
  } catch (error) {
    replace(el, failure("the comparison", error));
  }
}

// ---- review queue -------------------------------------------------------------------------

function evidenceText(evidence) {
  return Object.entries(evidence ?? {})
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

async function loadReview() {
  const tbody = byId("review").tBodies[0];
  try {
    const page = await getJSON("/api/v1/resolution/review", { limit: 200 });
    byId("review-meta").textContent = `${integer(page.total)} waiting`;
    if (!page.items.length) {
      replace(tbody, h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing waiting for review.")));
      return;
    }
    replace(tbody, page.items.map((c) => h("tr", { title: `proposed by run ${c.proposed_by_run}` },
      h("td", {}, h("div", {}, c.source, " ", h("span", { class: "mono" }, c.source_asset_id)),
        h("div", { class: "muted mono" }, c.coin_id)),
      h("td", { class: "mono" }, c.candidate_coin_id),
      h("td", {}, c.method),
      h("td", { class: "num" }, percent(c.confidence, 0)),
      h("td", { class: "muted evidence", title: evidenceText(c.evidence) }, evidenceText(c.evidence)))));
  } catch (error) {
    replace(tbody, h("tr", {}, h("td", { colspan: 5 }, failure("the review queue", error))));
  }
}

// ---- start --------------------------------------------------------------------------------

byId("coin-filter").addEventListener("input", renderPrices);
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => state.chart?.setSize({ width: byId("chart").clientWidth, height: 320 }), 150);
});

await Promise.all([loadHeader(), loadTotals(), loadPrices(), loadRuns(), loadReview()]);
document.body.dataset.ready = "true";
