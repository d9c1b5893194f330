// Path matching shared by Ingress and Gateway API: element-wise prefixes (`/foo` matches `/foo/bar`, not `/foobar`).
import type { StringMatch } from './model.ts';

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Kubernetes and Gateway API prefixes match whole path elements; a trailing `/` is ignored. */
export function elementPrefix(value: string): StringMatch {
  const v = value.replace(/\/+$/, '');
  if (v === '') return { prefix: '/' };
  return { regex: `${escapeRegex(v)}(/.*)?` };
}
