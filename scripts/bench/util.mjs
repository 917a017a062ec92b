// Small helpers shared by the benchmark modules: time, statistics, logging.
import { readFileSync } from 'node:fs';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Milliseconds from an arbitrary origin, sub-ms resolution (monotonic). */
export const now = () => performance.now();

/** Uniform random jitter in [0, maxMs). */
export const jitter = (maxMs) => Math.random() * maxMs;

// A closed pipe (`node scripts/bench.mjs | head`) must not end the run half way with processes
// left behind: write errors on stdout/stderr are ignored.
let stderrOpen = true;
process.stderr.on('error', () => {
  stderrOpen = false;
});
process.stdout.on('error', () => undefined);

export function log(message) {
  if (!stderrOpen) return;
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${message}\n`);
}

export function numbers(values) {
  return values.filter((v) => typeof v === 'number' && Number.isFinite(v));
}

export function median(values) {
  const v = numbers(values).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** {median, min, max, n} of the numeric values, or null when there are none. */
export function summary(values) {
  const v = numbers(values);
  if (v.length === 0) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

export const sum = (values) => numbers(values).reduce((a, b) => a + b, 0);

export function fixed(value, digits) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return value.toFixed(digits);
}

/** "median (min–max)", or the single value. */
export function formatSummary(s, digits) {
  if (s === null || s === undefined) return '–';
  if (s.n === 1 || s.min === s.max) return fixed(s.median, digits);
  return `${fixed(s.median, digits)} (${fixed(s.min, digits)}–${fixed(s.max, digits)})`;
}

export function loadavg() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return null;
  }
}

export function memAvailableKb() {
  try {
    const m = /MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Run async tasks with at most `limit` at a time; results in input order. */
export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
