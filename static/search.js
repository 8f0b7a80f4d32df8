// The search bar's language over the job filters (`status:failed host:example.com 4xx tag:x "two words"`).
// The box only proposes an address (address.js): what the view lists is read back from the address.

import { FILTER_KEYS } from "./address.js";

const ALIASES = { http: "http_status", code: "http_status" };

// "status:failed 4xx "price list" cheap" -> {status: "failed", http_status: "4xx", q: "price list cheap"}
export function parseSearch(text) {
  const filters = {};
  const words = [];
  for (const match of text.matchAll(/(\w+):("[^"]*"|\S+)|"([^"]*)"|(\S+)/g)) {
    const [, key, value, quoted, bare] = match;
    const name = key && (ALIASES[key] || key);
    if (name && FILTER_KEYS.includes(name)) filters[name] = value.replace(/^"|"$/g, "");
    else if (bare && /^[1-5]([0-9]{2}|xx)$/i.test(bare)) filters.http_status = bare.toLowerCase();
    else words.push(quoted ?? bare ?? match[0]);
  }
  if (words.length) filters.q = words.join(" ");
  return filters;
}

export function searchText(filters) {
  const parts = [];
  for (const [key, value] of Object.entries(filters)) {
    if (key === "q") continue;
    parts.push(`${key}:${/\s/.test(value) ? `"${value}"` : value}`);
  }
  if (filters.q) parts.push(filters.q);
  return parts.join(" ");
}
