// Kubernetes' `$(VAR)` expansion, as the kubelet applies it to env values, command and args.
//
// `$(NAME)` becomes NAME's value when NAME is known and stays as written otherwise; `$$` is a literal `$`
// (so `$$(NAME)` gives `$(NAME)`); a `$` before anything else, or an unclosed `$(`, is kept as is.

export type EnvLookup = (name: string) => string | undefined;

export function expandVars(input: string, lookup: EnvLookup): string {
  if (!input.includes('$')) return input;
  let out = '';
  let i = 0;
  while (i < input.length) {
    const ch = input[i];
    if (ch !== '$' || i + 1 >= input.length) {
      out += ch;
      i++;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i += 2;
        continue;
      }
      const name = input.slice(i + 2, close);
      const value = lookup(name);
      out += value ?? `$(${name})`;
      i = close + 1;
    } else {
      out += `$${next}`;
      i += 2;
    }
  }
  return out;
}

/** command and args: expanded against the container's final environment. */
export function expandArgs(list: readonly string[], env: ReadonlyMap<string, string>): string[] {
  const lookup: EnvLookup = (n) => env.get(n);
  return list.map((s) => expandVars(s, lookup));
}
