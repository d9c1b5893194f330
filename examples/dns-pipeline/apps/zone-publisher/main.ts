// zone-publisher's entry point: where zone-api and the edge are, from the environment; logs to stdout.
import { createLogger } from '../lib/log.ts';
import { runMain } from '../lib/main.ts';
import { Publisher, publisherConfig } from './publisher.ts';

const log = createLogger('zone-publisher');
runMain(log, () => {
  const p = new Publisher(publisherConfig(process.env), log);
  p.start();
  return Promise.resolve(p);
});
