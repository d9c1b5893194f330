// Runs an app: starts it, logs a startup failure and exits 1, and stops it on SIGTERM or SIGINT.
import { AppError } from './app-error.ts';
import type { Logger } from './log.ts';

export function runMain(log: Logger, start: () => Promise<{ close(): Promise<void> }>): void {
  Promise.resolve().then(start).then(
    (app) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info('stopping', { signal });
        const hard = setTimeout(() => process.exit(1), 5000);
        hard.unref();
        app.close().then(
          () => process.exit(0),
          (e: unknown) => {
            log.error('stop failed', { error: (e as Error).message });
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    },
    (e: unknown) => {
      const code = e instanceof AppError ? e.code : undefined;
      log.error('cannot start', { code, error: (e as Error).message });
      process.exit(1);
    },
  );
}
