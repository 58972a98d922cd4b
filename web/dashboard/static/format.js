// Display formats. Money arrives as exact decimal text and is only grouped, never rounded.

export function money(text) {
  if (text === null || text === undefined) return "–";
  const [whole, fraction] = String(text).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = sign ? whole.slice(1) : whole;
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + grouped + (fraction ? `.${fraction}` : "");
}

export function percent(ratio, digits = 2) {
  if (ratio === null || ratio === undefined) return "–";
  return `${(ratio * 100).toFixed(digits)}%`;
}

export function signedPercent(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  return `${value > 0 ? "+" : ""}${Number(value).toFixed(digits)}%`;
}

export function integer(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

export function utc(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().slice(0, 19).replace("T", " ");
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

export function ago(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (seconds < 90) return "just now";
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

// One colour per source, the same in the chart, the chips and the legend.
const SOURCE_COLOURS = {
  coingecko: "#3fb950",
  coinpaprika: "#f0883e",
  coincap: "#a371f7",
  csv: "#58a6ff",
};
const SPARE = ["#e3b341", "#ff7b72", "#79c0ff", "#d2a8ff"];

export function sourceColour(source, index = 0) {
  return SOURCE_COLOURS[source] ?? SPARE[index % SPARE.length];
}
