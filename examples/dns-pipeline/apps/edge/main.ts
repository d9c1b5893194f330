// edge's entry point: EDGE_VERSION, PORT (gRPC), DNS_PORT and DATA_DIR from the environment; logs to stdout.
import { stringEnv } from '../lib/env.ts';
import { createLogger } from '../lib/log.ts';
import { runMain } from '../lib/main.ts';
import { edgeConfig, startEdge } from './server.ts';

const log = createLogger(`edge-${stringEnv(process.env, 'EDGE_VERSION', 'v1')}`);
runMain(log, () => startEdge(edgeConfig(process.env), log));
