import { Option } from "commander";
import type { JobHints } from "../schemas/operations";
import { ControllerOps } from "../schemas/operations";
import { formatBytes } from "../lib/units";
import { As, tokenFor, withClient } from "./connect";
import { connectionOptions, count, duration, jsonOption, output, rate, ratio, bytes, tokenOption, VerbGroup, type Flags, type Verb } from "./verb";

/** Lease a job registered from the command line gets: the CLI exits at once and cannot renew it. */
const cliLeaseMs = 3600_000;

/** The job's hints from the flags, leaving out those not given. */
function hintsFrom(flags: Flags): JobHints {
  const hints: JobHints = {
    lambdas: flags.lambdas,
    capacityBytes: flags.capacity,
    throughputBps: flags.throughput,
    latencySensitive: flags.latencySensitive ? true : undefined,
    readRatio: flags.readRatio,
  };
  for (const k of Object.keys(hints) as Array<keyof JobHints>) if (hints[k] === undefined) delete hints[k];
  return hints;
}

export const jobRegister: Verb = {
  words: ["job", "register"],
  group: VerbGroup.Jobs,
  summary: "register a job; prints POCKET_JOB, POCKET_TOKEN and POCKET_CREDS for its lambdas",
  details: "The controller sizes the job from its hints (Pocket's rules) and picks its tier and nodes.\n"
    + "Prints what a lambda needs and nothing more: the job, its token and its one-job NATS credential.",
  args: [{ syntax: "<name>", description: "a name for the job (shown in `pocket jobs` and events)" }],
  options: [
    new Option("--lambdas <n>", "lambdas the job runs at once").argParser(count),
    new Option("--capacity <bytes>", "ephemeral capacity it needs, e.g. 10GiB").argParser(bytes),
    new Option("--throughput <rate>", "peak throughput it needs, e.g. 1Gbps or 100MB/s").argParser(rate),
    new Option("--latency-sensitive", "place it on DRAM"),
    new Option("--read-ratio <r>", "share of its I/O that is reads, 0 to 1 (NVMe reservations; default 0.5)").argParser(ratio),
    new Option("--lease <duration>", "how long the job lives without renewal, e.g. 30m (default 1h)").argParser(duration),
    ...connectionOptions("POCKET_NATS_CREDS"),
    jsonOption(),
  ],
  env: ["POCKET_NATS_URL", "POCKET_NATS_CREDS", "POCKET_TLS_CA"],
  examples: ["eval \"$(pocket job register demo --lambdas 10 --capacity 10GiB | sed 's/^/export /')\""],
  run: ([name], flags) => {
    const hints = hintsFrom(flags);
    return withClient(flags, As.Driver, async (c) => {
      const reg = await c.registerJob(name!, hints, { renew: false, leaseMs: flags.lease ?? cliLeaseMs });
      const creds = reg.credentials ? `POCKET_CREDS=${Buffer.from(reg.credentials, "utf8").toString("base64url")}\n` : "";
      output(flags, reg, () => `POCKET_JOB=${reg.jobId}\nPOCKET_TOKEN=${reg.token}\n${creds}`);
    });
  },
};

export const jobDeregister: Verb = {
  words: ["job", "deregister"],
  group: VerbGroup.Jobs,
  summary: "end a job and free everything it stored",
  args: [{ syntax: "<job>", description: "the job id; must be the token's job" }],
  options: [tokenOption(), ...connectionOptions("POCKET_NATS_CREDS"), jsonOption()],
  env: ["POCKET_NATS_URL", "POCKET_TOKEN", "POCKET_NATS_CREDS", "POCKET_TLS_CA"],
  examples: ["pocket job deregister $POCKET_JOB"],
  run: ([job], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Driver, async (c) => {
      const r = await c.deregisterJob(token);
      output(flags, r, () => `deregistered ${r.jobId}; freed ${formatBytes(r.freedBytes)}\n`);
    });
  },
};

export const usage: Verb = {
  words: ["usage"],
  group: VerbGroup.Jobs,
  summary: "what a job used and what it costs at its tier's node-hour price",
  args: [{ syntax: "<job>", description: "the job id" }],
  options: [...connectionOptions("POCKET_ADMIN_CREDS"), jsonOption()],
  env: ["POCKET_NATS_URL", "POCKET_ADMIN_CREDS", "POCKET_TLS_CA"],
  examples: ["pocket usage $POCKET_JOB"],
  run: ([jobId], flags) => withClient(flags, As.Admin, async (c) => {
    const u = (await c.controller.call(ControllerOps.jobUsage, { jobId: jobId! })).reply;
    const ended = u.endedAtMs ?? Date.now();
    output(flags, u, () => [
      `job ${u.jobId} (${u.name}): ${u.state}, ${u.tier}, ${((ended - u.registeredAtMs) / 1000).toFixed(1)} s`,
      `  reserved   ${u.demand.nodes.toFixed(3)} node(s) (${u.demand.bound}-bound: ${formatBytes(u.demand.capacityBytes)}, ${formatBytes(u.demand.throughputBps)}/s)`,
      `  stored     ${formatBytes(u.bytes)} now; ${(u.byteSeconds / 2 ** 30).toFixed(2)} GiB·s in all`,
      `  requests   ${u.requests}`,
      `  node-hours ${u.reservedNodeHours.toFixed(6)} reserved, ${u.usedNodeHours.toFixed(6)} used`,
      `  cost       $${u.cost.toFixed(6)} at $${u.pricePerNodeHour}/node-hour`,
      "",
    ].join("\n"));
  }),
};

export const jobVerbs: readonly Verb[] = [jobRegister, jobDeregister, usage];
