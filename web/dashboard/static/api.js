// The JSON API, same origin. An error names the request and the API's own detail.

export class ApiError extends Error {
  constructor(path, status, detail) {
    super(`${path}: ${status} ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export async function getJSON(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) query.set(key, String(value));
  }
  const url = query.size ? `${path}?${query}` : path;
  const response = await fetch(url, { headers: { accept: "application/json" } });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch {
      // not a JSON body: keep the status text
    }
    throw new ApiError(url, response.status, detail);
  }
  return response.json();
}

/** Every quote of a coin, oldest first, following next_cursor up to maxPages pages. */
export async function quotesOf(coinId, { pageSize = 1000, maxPages = 10 } = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const body = await getJSON("/api/v1/data", {
      coin_id: coinId, sort: "observed_at", limit: pageSize, cursor,
    });
    items.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}
