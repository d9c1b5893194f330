// intruder's entry point: its targets and pace from the environment; logs every attempt to stdout.
import { createLogger } from '../lib/log.ts';
import { runMain } from '../lib/main.ts';
import { Intruder, intruderConfig } from './intruder.ts';

const log = createLogger('intruder');
runMain(log, () => {
  const i = new Intruder(intruderConfig(process.env), log);
  i.start();
  return Promise.resolve(i);
});
