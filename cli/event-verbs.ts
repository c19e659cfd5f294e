import fs from "node:fs";
import { Option } from "commander";
import { readEvents } from "../bus/events";
import { SubjectRoot } from "../bus/subjects";
import type { ControllerInput, Decision } from "../actors/controller/inputs";
import { connectAdmin } from "./connect";
import { bytes, connectionOptions, jsonOption, output, positive, UsageError, VerbGroup, type Flags, type Verb } from "./verb";

export const events: Verb = {
  words: ["events"],
  group: VerbGroup.Cluster,
  summary: "the controller's decisions and lifecycle changes (and the inputs behind them)",
  details: "Reads the event stream (JetStream POCKET_EVENTS) from its start; with --follow, keeps printing until Ctrl-C.",
  args: [],
  options: [
    new Option("-f, --follow", "keep printing new events as they come"),
    new Option("--inputs", "also the inputs the controller decided on (heartbeats, registrations, ticks)"),
    ...connectionOptions("POCKET_ADMIN_CREDS"),
    new Option("--json", "one JSON object per line"),
  ],
  env: ["POCKET_NATS_URL", "POCKET_ADMIN_CREDS", "POCKET_TLS_CA"],
  examples: ["pocket events --follow", "pocket events --json | jq .kind"],
  run: async (_args, flags) => {
    const { describeDecision } = require("../actors/controller/replay") as typeof import("../actors/controller/replay");
    const nc = await connectAdmin(flags);
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once("SIGINT", stop);
    let origin: number | undefined;
    try {
      for await (const { seq, subject, event } of readEvents(nc, { follow: flags.follow, inputs: flags.inputs, signal: ac.signal })) {
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ seq, ...event })}\n`);
          continue;
        }
        const at = typeof event["atMs"] === "number" ? event["atMs"] : 0;
        origin ??= at;
        // Decisions read as sentences; inputs (on the trace subjects) as they were recorded.
        const line = subject.startsWith(`${SubjectRoot}.evt.`)
          ? describeDecision(event as unknown as Decision, origin)
          : `${((at - origin) / 1000).toFixed(1).padStart(7)}s  ${String(event["kind"]).padEnd(16)} ${JSON.stringify(event)}`;
        process.stdout.write(`${new Date(at).toISOString()} ${line.trimStart()}\n`);
      }
    } finally {
      process.off("SIGINT", stop);
      await nc.close();
    }
  },
};

/** The inputs recorded on the event stream, in order. */
async function streamInputs(flags: Flags): Promise<ControllerInput[]> {
  const nc = await connectAdmin(flags);
  try {
    const inputs: ControllerInput[] = [];
    for await (const { subject, event } of readEvents(nc, { inputs: true })) {
      if (subject.startsWith(`${SubjectRoot}.trace.`)) inputs.push(event as unknown as ControllerInput);
    }
    return inputs;
  } finally {
    await nc.close();
  }
}

/** Prints the difference between replayed and expected decisions; exit code 1 when there is one. */
function printDiff(expectFile: string, lines: readonly string[]): void {
  const { diffLines, readExpected } = require("../actors/controller/replay") as typeof import("../actors/controller/replay");
  const diff = diffLines(readExpected(expectFile), [...lines]);
  if (diff.length === 0) {
    process.stdout.write(`${lines.length} decisions, as expected\n`);
    return;
  }
  for (const d of diff) process.stdout.write(`${d.op} ${d.op === "-" ? "expected" : "replayed"} #${d.at}: ${d.line}\n`);
  process.stdout.write(`${diff.filter((d) => d.op === "-").length} expected decisions missing, ${diff.filter((d) => d.op === "+").length} unexpected\n`);
  process.exitCode = 1;
}

export const replay: Verb = {
  words: ["replay"],
  group: VerbGroup.Cluster,
  summary: "re-run the controller's decisions over a recorded trace",
  details: "TRACE is NDJSON (the live controller appends every input to controller-trace.ndjson in the cluster's data\n"
    + "directory); --stream reads the inputs on the event stream instead. With --expect, prints the differences from\n"
    + "the expected decisions and exits 1 if there are any.",
  args: [{ syntax: "[trace]", description: "a recorded trace (NDJSON); omit with --stream" }],
  options: [
    new Option("--stream", "replay the inputs recorded on the event stream (needs the cluster)"),
    new Option("--expect <file>", "expected decisions, one per line: print the differences, exit 1 if any"),
    new Option("--write <file>", "write the replayed decisions here, one per line"),
    ...connectionOptions("POCKET_ADMIN_CREDS"),
    new Option("--json", "decisions as JSON lines"),
  ],
  env: ["POCKET_NATS_URL", "POCKET_ADMIN_CREDS", "POCKET_TLS_CA"],
  examples: ["pocket replay test/replay/scale-out.trace.ndjson --expect test/replay/scale-out.expected.ndjson"],
  run: async ([trace], flags) => {
    if (trace === undefined && !flags.stream) throw new UsageError("give a TRACE file or --stream");
    if (trace !== undefined && flags.stream) throw new UsageError("give a TRACE file or --stream, not both");
    // The controller's core loads only for the verbs that replay it.
    const { decisionLine, describeDecision, replayInputs, replayTrace } = require("../actors/controller/replay") as typeof import("../actors/controller/replay");
    const { decisions } = flags.stream ? replayInputs(await streamInputs(flags)) : await replayTrace(trace!);
    const lines = decisions.map(decisionLine);
    if (flags.write) fs.writeFileSync(flags.write, lines.map((l) => `${l}\n`).join(""));
    if (flags.expect) return printDiff(flags.expect, lines);
    if (flags.json) {
      for (const l of lines) process.stdout.write(`${l}\n`);
      return;
    }
    const origin = decisions[0]?.atMs ?? 0;
    for (const d of decisions) process.stdout.write(`${describeDecision(d, origin)}\n`);
  },
};

export const calibrateVerb: Verb = {
  words: ["calibrate"],
  group: VerbGroup.Cluster,
  summary: "measure a device's p95 latency against offered load and write the model NVMe nodes schedule by",
  details: "Open loop, 4 KiB random reads and an 80/20 read/write mix; the model is the token rate within the latency\n"
    + "limit and the write cost in reads (`pocket up --nvme-model FILE` uses it).",
  args: [],
  options: [
    new Option("--device <path>", "a block device or file to measure").makeOptionMandatory(),
    new Option("--size <bytes>", "bytes of it to use, e.g. 1GiB (a file is created this size)").argParser(bytes),
    new Option("--latency <us>", "p95 latency limit in microseconds").argParser(positive).default(1000),
    new Option("--seconds <s>", "seconds per load step").argParser(positive).default(1),
    new Option("--out <file>", "where the model goes").default("pocket-device-model.json"),
    jsonOption(),
  ],
  env: [],
  examples: ["pocket calibrate --device /var/tmp/pocket-nvme.img --size 1GiB"],
  run: async (_args, flags) => {
    const { calibrate } = require("../native/calibrate") as typeof import("../native/calibrate");
    const model = await calibrate({
      path: flags.device!, sizeBytes: flags.size, latencyLimitUs: flags.latency!, stepSeconds: flags.seconds!, readRatio: 0.8,
    }, (p) => process.stderr.write(`calibrate: ${p.workload.padEnd(5)} offered ${String(p.offeredIops).padStart(7)} IOPS → ${String(Math.round(p.achievedIops)).padStart(7)} IOPS, p95 ${p.p95Us.toFixed(0)} µs\n`));
    fs.writeFileSync(flags.out!, JSON.stringify(model, null, 2));
    output(flags, model, () => `${Math.round(model.tokensPerSec).toLocaleString("en")} tokens/s within a p95 of ${model.latencyLimitUs} µs; a 4 KiB write costs ${model.writeCost} (a read ${model.readCost}); written to ${flags.out}\n`);
  },
};

export const eventVerbs: readonly Verb[] = [events, replay, calibrateVerb];
