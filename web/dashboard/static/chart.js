// The price chart of one coin: one line per source over its history and snapshots (uPlot).
import uPlot from "./vendor/uplot/uPlot.esm.js";
import { sourceColour } from "./format.js";

/**
 * Aligns quotes ({source, observed_at, price_usd}) on one time axis: uPlot wants a shared,
 * ascending x array and one y array per series, null where a source has no observation.
 */
export function seriesOf(quotes) {
  const sources = [...new Set(quotes.map((q) => q.source))].sort();
  const times = [...new Set(quotes.map((q) => Date.parse(q.observed_at) / 1000))].sort((a, b) => a - b);
  const column = new Map(times.map((t, i) => [t, i]));
  const ys = sources.map(() => new Array(times.length).fill(null));
  for (const q of quotes) {
    ys[sources.indexOf(q.source)][column.get(Date.parse(q.observed_at) / 1000)] = Number(q.price_usd);
  }
  return { sources, data: [times, ...ys] };
}

function priceTick(value) {
  if (value === null) return "";
  const abs = Math.abs(value);
  if (abs >= 1000) return `$${value.toLocaleString("en-US", { maximumFractionDigits: 0 })}`;
  if (abs >= 1) return `$${value.toFixed(2)}`;
  return `$${value.toPrecision(3)}`;
}

const AXIS = { stroke: "#8b949e", grid: { stroke: "#21262d", width: 1 }, ticks: { stroke: "#30363d" } };

export function drawChart(container, quotes, previous) {
  previous?.destroy();
  container.replaceChildren();
  const { sources, data } = seriesOf(quotes);
  const width = Math.max(container.clientWidth, 320);
  // A source with a few observations (a snapshot or two, no history) is drawn as dots big
  // enough to see beside a line of daily history.
  const observed = data.slice(1).map((ys) => ys.filter((y) => y !== null).length);
  const options = {
    width,
    height: 320,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      // 2% of the span as a margin on each side: the newest snapshots sit at the right edge.
      x: { time: true, range: (_u, min, max) => [min - (max - min) * 0.02, max + (max - min) * 0.02] },
    },
    cursor: { points: { size: 7 } },
    legend: { live: true },
    axes: [
      { ...AXIS },
      { ...AXIS, size: 78, values: (_u, ticks) => ticks.map(priceTick) },
    ],
    series: [
      { label: "UTC" },
      ...sources.map((source, i) => ({
        label: source,
        stroke: sourceColour(source, i),
        width: 2,
        spanGaps: true,
        points: {
          show: observed[i] <= 3 || data[0].length < 120,
          size: observed[i] <= 3 ? 9 : 5,
          fill: sourceColour(source, i),
        },
        value: (_u, v) => (v === null ? "–" : priceTick(v)),
      })),
    ],
  };
  return new uPlot(options, data, container);
}
