import type { PoolStatus, SlotStatus } from './stats.js';
import type { SlotState } from '../pool/pool-snapshot.js';

/** A state name as the Pool writes them ('running', 'backing off'...): checked by form, so that new states pass. */
const STATE_NAME = /^[a-z][a-z -]{0,31}$/;
const MAX_SLOTS = 100_000;

/** Why a control socket's answer is not a pool status: one line, fit for an error message. */
export class BadAnswer extends Error {}

/**
 * The client's check of a control socket's answer: the JSON must have the shape `status` renders, or it is
 * refused with a one-line reason (a squatter or a broken peer must not crash the client or reach its output).
 */
export function parseStatusAnswer(body: string): PoolStatus {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new BadAnswer('the answer is not JSON');
  }
  const o = record(value, 'the answer');
  const slotsValue = o.slots;
  if (!Array.isArray(slotsValue)) throw new BadAnswer("'slots' is not a list");
  if (slotsValue.length > MAX_SLOTS) throw new BadAnswer(`'slots' has ${slotsValue.length} entries`);
  const slots = slotsValue.map((s, i) => slot(s, `slots[${i}]`));
  return {
    supervisorPid: positiveInteger(o.supervisorPid, 'supervisorPid'),
    socket: string(o.socket, 'socket'),
    startedAt: number(o.startedAt, 'startedAt'),
    now: number(o.now, 'now'),
    configured: o.configured === undefined ? slots.length : count(o.configured, 'configured'),
    stopping: o.stopping === undefined ? false : boolean(o.stopping, 'stopping'),
    children: count(o.children, 'children'),
    restarts: count(o.restarts, 'restarts'),
    listenQueue: nullable(o.listenQueue, 'listenQueue', count),
    ...(o.min !== undefined && o.max !== undefined ? { min: count(o.min, 'min'), max: count(o.max, 'max') } : {}),
    slots,
  };
}

function slot(value: unknown, where: string): SlotStatus {
  const o = record(value, where);
  const state = string(o.state, `${where}.state`);
  if (!STATE_NAME.test(state)) throw new BadAnswer(`${where}.state is not a slot state`);
  const out: SlotStatus = {
    slot: count(o.slot, `${where}.slot`),
    pid: nullable(o.pid, `${where}.pid`, positiveInteger),
    state: state as SlotState,
    startedAt: nullable(o.startedAt, `${where}.startedAt`, number),
    restarts: count(o.restarts, `${where}.restarts`),
    failures: count(o.failures, `${where}.failures`),
    lastExit: nullable(o.lastExit, `${where}.lastExit`, lastExit),
    cpuPercent: nullable(o.cpuPercent, `${where}.cpuPercent`, number),
    cpuSeconds: nullable(o.cpuSeconds, `${where}.cpuSeconds`, number),
    rssBytes: nullable(o.rssBytes, `${where}.rssBytes`, number),
  };
  if (o.nextRestartAt !== undefined) out.nextRestartAt = nullable(o.nextRestartAt, `${where}.nextRestartAt`, number);
  if (o.lastError !== undefined) out.lastError = nullable(o.lastError, `${where}.lastError`, string);
  return out;
}

function lastExit(value: unknown, where: string): NonNullable<SlotStatus['lastExit']> {
  const o = record(value, where);
  return {
    code: nullable(o.code, `${where}.code`, number),
    signal: nullable(o.signal, `${where}.signal`, string),
    at: number(o.at, `${where}.at`),
    reason: string(o.reason, `${where}.reason`),
  };
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadAnswer(`${where} is not an object`);
  return value as Record<string, unknown>;
}

function nullable<T>(value: unknown, where: string, check: (v: unknown, where: string) => T): T | null {
  return value === null ? null : check(value, where);
}

function number(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new BadAnswer(`${where} is not a number`);
  return value;
}

function count(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new BadAnswer(`${where} is not a count`);
  return value as number;
}

function positiveInteger(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) throw new BadAnswer(`${where} is not a PID`);
  return value as number;
}

function string(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new BadAnswer(`${where} is not a string`);
  if (value.length > 4096) throw new BadAnswer(`${where} is longer than 4096 characters`);
  return value;
}

function boolean(value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') throw new BadAnswer(`${where} is not true or false`);
  return value;
}
