// Logging to stdout, one line per event: time, level, app, message, then key=value fields.

export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

function formatValue(v: string | number | boolean): string {
  const s = String(v);
  return s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

export function formatLine(level: string, app: string, msg: string, fields: Fields = {}): string {
  let line = `${new Date().toISOString()} ${level.padEnd(5)} ${app}: ${msg}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) line += ` ${k}=${formatValue(v)}`;
  return line;
}

/** A logger writing to `out` (stdout by default). */
export function createLogger(app: string, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  return {
    info: (msg, fields) => out(formatLine('INFO', app, msg, fields)),
    warn: (msg, fields) => out(formatLine('WARN', app, msg, fields)),
    error: (msg, fields) => out(formatLine('ERROR', app, msg, fields)),
  };
}

/** A logger that drops everything (for embedding an app in tests). */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
