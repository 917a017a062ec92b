/** The pure parts of src/observe/sd-notify.ts: message formatting, watchdog interval, notifier argv, NOTIFY_SOCKET. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { MAX_STATUS_BYTES, createNotifier, formatNotification, notifierArguments, notifierPath, watchdogIntervalMs } from '../../../src/observe/sd-notify.js';

describe('formatNotification', () => {
  test('NAME=value lines in the given order, joined by a newline, none trailing', () => {
    assert.equal(formatNotification({ READY: 1, STATUS: 'serving 4 children' }), 'READY=1\nSTATUS=serving 4 children');
    assert.equal(formatNotification({ STATUS: 'x', READY: 1 }), 'STATUS=x\nREADY=1');
    assert.equal(formatNotification({ WATCHDOG: 1 }), 'WATCHDOG=1');
    assert.equal(formatNotification({}), '');
  });

  test('numbers and bigints are written in decimal', () => {
    assert.equal(formatNotification({ MAINPID: 4242, MONOTONIC_USEC: 123456789012345678n }), 'MAINPID=4242\nMONOTONIC_USEC=123456789012345678');
    assert.equal(formatNotification({ ERRNO: 0 }), 'ERRNO=0');
  });

  test('a newline, carriage return or NUL in a value becomes a space (it would split or end the message)', () => {
    assert.equal(formatNotification({ STATUS: 'line one\nREADY=1\r\0x' }), 'STATUS=line one READY=1  x');
  });

  test('an empty value is kept (STATUS= clears the status)', () => {
    assert.equal(formatNotification({ STATUS: '' }), 'STATUS=');
  });

  test('STATUS is cut to MAX_STATUS_BYTES of UTF-8 on a character boundary', () => {
    const long = 'é'.repeat(MAX_STATUS_BYTES); // 2 bytes each
    const line = formatNotification({ STATUS: long });
    const value = line.slice('STATUS='.length);
    assert.ok(Buffer.byteLength(value) <= MAX_STATUS_BYTES, `${Buffer.byteLength(value)} bytes`);
    assert.ok(Buffer.byteLength(value) >= MAX_STATUS_BYTES - 4, `${Buffer.byteLength(value)} bytes`);
    assert.ok(value.endsWith('...'));
    assert.ok(!value.includes('\uFFFD'));
    const exact = 'a'.repeat(MAX_STATUS_BYTES);
    assert.equal(formatNotification({ STATUS: exact }), `STATUS=${exact}`);
  });

  test('other fields are not truncated', () => {
    const long = 'x'.repeat(MAX_STATUS_BYTES * 2);
    assert.equal(formatNotification({ X_CUSTOM: long }), `X_CUSTOM=${long}`);
  });

  test('bad names and values are programming errors', () => {
    assert.throws(() => formatNotification({ ready: 1 }), /invalid sd_notify field name "ready"/);
    assert.throws(() => formatNotification({ 'A=B': 1 }), TypeError);
    assert.throws(() => formatNotification({ 'A\nB': 1 }), TypeError);
    assert.throws(() => formatNotification({ '1ABC': 1 }), TypeError);
    assert.throws(() => formatNotification({ MAINPID: 1.5 }), /must be an integer, got 1.5/);
    assert.throws(() => formatNotification({ MAINPID: Number.NaN }), TypeError);
    assert.throws(() => formatNotification({ STATUS: undefined as unknown as string }), /must be a string or a number/);
  });
});

describe('watchdogIntervalMs', () => {
  test('half of WATCHDOG_USEC, in ms', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '200000' }, 10), 100);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 10), 15000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '3001' }, 10), 1);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1' }, 10), 1);
  });

  test('only for the process WATCHDOG_PID names (or any when it is unset or empty)', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '10' }, 10), 100);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '' }, 10), 100);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '11' }, 10), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }), 100);
  });

  test('no or malformed WATCHDOG_USEC: no watchdog', () => {
    for (const value of [undefined, '', '0', '-5', '1e6', ' 100', 'abc', '99999999999999999999999']) {
      assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: value }, 10), undefined, `WATCHDOG_USEC=${value}`);
    }
  });

  test('the interval fits setInterval', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: String(2 ** 52) }, 10), 2 ** 31 - 1);
  });
});

describe('notifier argv and path', () => {
  test('--pid only as root', () => {
    assert.deepEqual(notifierArguments('/run/systemd/notify', 77, true), ['/run/systemd/notify', '--pid', '77']);
    assert.deepEqual(notifierArguments('@abstract', 77, false), ['@abstract']);
  });

  test('SPAWN_FCGI_TS_NOTIFY overrides the built binary', () => {
    assert.equal(notifierPath({ SPAWN_FCGI_TS_NOTIFY: '/opt/notify' }), '/opt/notify');
    assert.match(notifierPath({}), new RegExp(`/build/${process.arch}/spawn-fcgi-ts-notify$`));
  });
});

describe('createNotifier', () => {
  test('undefined when NOTIFY_SOCKET is unset or empty', () => {
    assert.equal(createNotifier({}), undefined);
    assert.equal(createNotifier({ NOTIFY_SOCKET: '' }), undefined);
  });

  test('lazy: creating one starts nothing, closing an unused one is immediate', async () => {
    const errors: string[] = [];
    const notifier = createNotifier(
      { NOTIFY_SOCKET: '/nonexistent/notify.sock', SPAWN_FCGI_TS_NOTIFY: '/nonexistent/notify-binary' },
      {
        onError: (line) => errors.push(line),
      },
    );
    assert.ok(notifier);
    assert.equal(notifier.socket, '/nonexistent/notify.sock');
    await notifier.close();
    notifier.ready('after close');
    assert.deepEqual(errors, []);
  });

  test('a missing binary is reported once, then notifications are off', () => {
    const errors: string[] = [];
    const notifier = createNotifier(
      { NOTIFY_SOCKET: '/tmp/x.sock', SPAWN_FCGI_TS_NOTIFY: '/nonexistent/notify-binary' },
      {
        onError: (line) => errors.push(line),
      },
    );
    assert.ok(notifier);
    notifier.ready();
    notifier.status('again');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /sd_notify helper not found at \/nonexistent\/notify-binary/);
  });
});
