/**
 * Text that came from elsewhere (a child's exit reason, a control socket's answer) shown on a terminal or
 * in a page: C0/C1 control characters and DEL become visible escapes, so no ESC sequence reaches the reader.
 */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** JSON for a terminal: JSON.stringify escapes C0 characters already; DEL and C1 (e.g. U+009B, CSI) too. */
export function terminalSafeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return escapeControl(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
