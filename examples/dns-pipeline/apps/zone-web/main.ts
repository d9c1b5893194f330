// zone-web's entry point: PORT, where zone-api is, and the JWT settings and key from the environment.
import { createLogger } from '../lib/log.ts';
import { runMain } from '../lib/main.ts';
import { startZoneWeb, zoneWebConfig } from './server.ts';

const log = createLogger('zone-web');
runMain(log, () => startZoneWeb(zoneWebConfig(process.env), log));
