#!/usr/bin/env node
/**
 * The `xenabi` command. Parsing and dispatch live in program.ts; this file only connects the
 * process: its arguments, its streams and its exit code.
 */

import { exitQuietlyOnEpipe, processIo } from './io.js';
import { main } from './program.js';

exitQuietlyOnEpipe(process.stdout);
process.exitCode = await main(process.argv.slice(2), processIo());
