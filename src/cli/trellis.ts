// Process entry of the `trellis` command (bin/trellis.js runs the compiled form of this file).
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
