#!/usr/bin/env node
/**
 * The `pocket` command: `pocket help` lists the verbs, `pocket help VERB`
 * shows one (cli/program.ts builds them from their declarations in
 * cli/*-verbs.ts). Exit codes: 0 ok, 1 the operation failed, 2 usage error.
 */
import os from "node:os";
import { runCli } from "./program";

// The reader of standard output went away (`pocket help | head`): stop quietly, as a shell tool killed by SIGPIPE does.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
  process.exit(128 + os.constants.signals.SIGPIPE);
});

runCli(process.argv.slice(2)).then((code) => process.exit(code));
