import type { Logger } from '../observe/log.js';
import { restartDelay, type RestartPolicy } from './restart-policy.js';
import type { Next, PoolEvent } from './pool-events.js';

/** Pool events → log lines. The texts are the ones users and tests know (`child spawned: PID`, `restarting in`...). */
export function logPoolEvent(logger: Logger, policy: RestartPolicy, event: PoolEvent): void {
  switch (event.type) {
    case 'spawned':
      if (event.cause === 'restart') logger.info('spawn', `child spawned: PID: ${event.pid}`, { slot: event.slot, pid: event.pid });
      else logger.debug('spawn', `child spawned: PID: ${event.pid} (${event.cause})`, { slot: event.slot, pid: event.pid });
      return;
    case 'spawn failed': {
      const fields = event.pid === null ? { slot: event.slot } : { slot: event.slot, pid: event.pid };
      if (event.next.action === 'restart') {
        logger.warn('exit', `child failed after ${formatMs(event.uptimeMs)} (could not start: ${event.reason}), ${nextText(event.next, policy)}`, {
          ...fields,
          delayMs: event.next.delayMs,
        });
      } else if (event.next.action === 'none') {
        logger.debug('exit', `could not start: ${event.reason}`, fields);
      }
      return;
    }
    case 'exited': {
      const fields = { slot: event.slot, pid: event.pid };
      const next = event.next;
      if (next.action === 'none') {
        logger.debug('exit', `child exited (${event.reason})`, fields);
      } else if (next.action === 'restart' && next.why === 'planned') {
        const when = next.delayMs === 0 ? 'restarting' : `next start in ${next.delayMs} ms (restart rate bound)`;
        logger.info('exit', `child exited with: 0 after ${event.uptimeMs} ms (planned), ${when}`, fields);
      } else if (next.action === 'restart' && next.why === 'stable crash') {
        const when = next.delayMs === 0 ? 'restarting now' : `next start in ${next.delayMs} ms (restart rate bound)`;
        logger.warn('exit', `child died (${event.reason}) after ${formatMs(event.uptimeMs)}, ${when}`, { ...fields, delayMs: next.delayMs });
      } else if (next.action === 'restart') {
        logger.warn('exit', `child failed after ${formatMs(event.uptimeMs)} (${event.reason}), ${nextText(next, policy)}`, {
          ...fields,
          delayMs: next.delayMs,
        });
      }
      return;
    }
    case 'retired':
      logger.debug('retired', `retired child exited (${event.reason})`, { slot: event.slot, pid: event.pid });
      return;
    case 'backing off':
      logger.debug('backoff', `next start in ${event.delayMs} ms (last: ${event.reason}; ${event.failures} fast failures in a row)`, { slot: event.slot });
      return;
    case 'gave up': {
      const fields = event.pid === null ? { slot: event.slot } : { slot: event.slot, pid: event.pid };
      logger.error('give-up', `child failed ${event.failures} times in a row (last: ${event.reason}): giving up (--max-failures ${event.maxFailures})`, fields);
      return;
    }
    case 'recycling':
      logger.info('recycle', `recycling child: ${event.reason}`, { slot: event.slot, pid: event.pid });
      return;
    case 'replacing':
      logger.info('replace', `${event.reason}: new child PID: ${event.pid}${event.oldPid !== null ? `, replacing ${event.oldPid}` : ''}`, {
        slot: event.slot,
        pid: event.pid,
      });
      return;
    case 'replaced':
      logger.debug('replace', `${event.reason}: ${event.pid} serves${event.oldPid !== null ? ` instead of ${event.oldPid}` : ''}`, {
        slot: event.slot,
        pid: event.pid,
      });
      return;
    case 'replace failed': {
      const fields = event.pid === null ? { slot: event.slot } : { slot: event.slot, pid: event.pid };
      logger.error(
        'replace',
        `${event.reason}: the new child failed to start (${event.why})${event.oldKeepsServing ? '; the old one keeps serving' : ''}`,
        fields,
      );
      return;
    }
    case 'scaled': {
      const why = event.why === 'queued' ? ' (connections waiting)' : event.why === 'idle' ? ' (idle)' : '';
      const bounds = event.min !== undefined && event.max !== undefined ? ` [${event.min}-${event.max}]` : '';
      if (event.direction === 'grow') {
        logger.info(
          'scale',
          `pool grows to ${event.size}${bounds}${why}${event.pid !== null ? `: PID: ${event.pid}` : ''}`,
          event.pid !== null ? { slot: event.slot, pid: event.pid } : { slot: event.slot },
        );
      } else {
        logger.info('scale', `pool shrinks to ${event.size}${bounds}${why}`, event.pid !== null ? { slot: event.slot, pid: event.pid } : { slot: event.slot });
      }
      return;
    }
    case 'scale refused':
      logger.warn('scale', `pool stays at ${event.size}: ${event.limit} children is the most it may have`);
      return;
    case 'kill escalated':
      logger.warn('kill', `child did not exit ${event.timeoutMs} ms after ${event.signal}: sending SIGKILL to its process group`, { pid: event.pid });
      return;
    case 'stopping':
    case 'stopped':
      return; // the supervisor says why it stops and when it is done
    case 'ignored transition':
      logger.warn('state', `internal: event '${event.event}' ignored in state '${event.state}'`, { slot: event.slot });
      return;
  }
}

function nextText(next: Next, policy: RestartPolicy): string {
  if (next.action !== 'restart') return '';
  const failure = `failure ${next.failures}, `;
  if (next.delayMs === 0) return `${failure}restarting now (a next fast failure waits ${restartDelay(2, policy, () => 0.5)} ms)`;
  if (next.rateBound) return `${failure}restarting in ${next.delayMs} ms (restart rate bound)`;
  const capped = next.delayMs >= policy.maxRestartDelayMs * 0.8 ? ' (at the cap: still crash-looping, still retrying)' : '';
  return `${failure}restarting in ${next.delayMs} ms${capped}`;
}

export const formatMs = (ms: number): string => (ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`);

/** The sd_notify STATUS= line for an event an operator should see in `systemctl status`; undefined for the rest. */
export function notifyStatus(event: PoolEvent): string | undefined {
  if (event.type === 'gave up') return `slot ${event.slot} gave up after ${event.failures} failures: ${event.reason}`;
  if (event.type === 'backing off' && event.failures > 0) return `slot ${event.slot} backing off ${event.delayMs} ms: ${event.reason}`;
  return undefined;
}
