// Every relative link in README.md and docs/*.md points at a file that exists, and every #anchor at a
// heading of that file (GitHub's slugs), so that a renamed page or heading cannot leave a dead link behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

/** Markdown outside fenced code blocks and inline code, where a link is text, not a link. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, (code) => (code.includes('](') ? '' : code));
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, "-1"... for repeats. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const match of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = match[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

function links(markdown: string): string[] {
  return [...prose(markdown).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1]!);
}

test('GitHub anchors of headings', () => {
  assert.deepEqual(
    [...anchors('# A spawn-php.sh config file\n## In a container (PID 1)\n## `status`\n## Status\n## Status')],
    ['a-spawn-phpsh-config-file', 'in-a-container-pid-1', 'status', 'status-1', 'status-2'],
  );
});

test('every relative link and anchor in README.md and docs/*.md resolves', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of PAGES) {
    const text = readFileSync(join(ROOT, page), 'utf8');
    for (const link of links(text)) {
      if (/^[a-z][a-z+.-]*:/i.test(link)) continue; // http:, https:, mailto:, man:
      checked++;
      const [pathPart, anchor] = link.split('#', 2) as [string, string | undefined];
      const target = pathPart === '' ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), decodeURIComponent(pathPart));
      if (!existsSync(target)) {
        broken.push(`${page}: ${link} (no ${relative(ROOT, target)})`);
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      if (!statSync(target).isFile() || !target.endsWith('.md')) {
        broken.push(`${page}: ${link} (an anchor into something that is not a Markdown file)`);
        continue;
      }
      if (!anchors(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${page}: ${link} (no heading '#${anchor}' in ${relative(ROOT, target)})`);
    }
  }
  assert.ok(checked > 30, `only ${checked} links found: the link pattern is broken`);
  assert.deepEqual(broken, []);
});
