// loadgen's entry point: targets and rate from the environment; logs a summary to stdout every few seconds.
import { createLogger } from '../lib/log.ts';
import { runMain } from '../lib/main.ts';
import { Loadgen, loadgenConfig } from './loadgen.ts';

const log = createLogger('loadgen');
runMain(log, () => {
  const l = new Loadgen(loadgenConfig(process.env), log);
  l.start();
  return Promise.resolve(l);
});
