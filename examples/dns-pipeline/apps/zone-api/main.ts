// zone-api's entry point: configuration from the environment, logs to stdout, clean stop on SIGTERM/SIGINT.
import { createLogger } from '../lib/log.ts';
import { runMain } from '../lib/main.ts';
import { startZoneApi, zoneApiConfig } from './server.ts';

const log = createLogger('zone-api');
runMain(log, async () => startZoneApi(zoneApiConfig(process.env), log));
