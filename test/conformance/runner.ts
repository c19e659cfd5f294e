import fs from "node:fs";
import path from "node:path";
import { PocketClient, type ClientTransport, type PocketJob } from "../../client/pocket";
import { isPocketError } from "../../schemas/errors";
import { patternBytes } from "../harness/cluster";

/*
 * The TypeScript runner of the language-neutral conformance cases in
 * cases.json (the Python SDK's runner is clients/python/tests/conformance.py):
 * each case registers fresh jobs with a driver's credential, gives each job a
 * lambda client of its own on the transport under test, runs its steps and
 * compares every result, or typed error, with what the case expects.
 */

export interface DataSpec {
  readonly size?: number;
  readonly seed?: number;
  readonly text?: string;
  readonly slice?: readonly [number, number];
}

export interface Step {
  readonly op: string;
  readonly job?: string;
  readonly path?: string;
  readonly data?: DataSpec;
  readonly range?: { readonly offset?: number; readonly length?: number };
  readonly token?: "forged";
  readonly forgedFor?: string;
  readonly createOnly?: boolean;
  readonly pieceBytes?: number;
  readonly declareSize?: number;
  readonly recursive?: boolean;
  readonly after?: string;
  readonly limit?: number;
  readonly expect: Readonly<Record<string, unknown>>;
}

export interface Case {
  readonly name: string;
  readonly jobs?: readonly string[];
  readonly steps: readonly Step[];
}

export interface Cases {
  readonly cluster: { readonly inlineBytesMax: number; readonly extentBytesMax: number };
  readonly cases: readonly Case[];
}

export const casesFile = path.join(__dirname, "cases.json");

export function loadCases(): Cases {
  return JSON.parse(fs.readFileSync(casesFile, "utf8")) as Cases;
}

const patterns = new Map<string, Buffer>();

/** The bytes a data spec names (patterns cached: cases reuse them). */
export function dataOf(spec: DataSpec): Buffer {
  let whole: Buffer;
  if (spec.text !== undefined) whole = Buffer.from(spec.text, "utf8");
  else {
    const key = `${spec.size}:${spec.seed}`;
    whole = patterns.get(key) ?? patternBytes(spec.size!, spec.seed!);
    patterns.set(key, whole);
  }
  return spec.slice ? whole.subarray(spec.slice[0], spec.slice[1]) : whole;
}

/** A token whose job id claim names another job, signature unchanged: what a tenant could make without the cluster's key. */
export function forgeToken(token: string, jobId: string): string {
  const [body, sig] = token.split(".");
  const claims = JSON.parse(Buffer.from(body!, "base64url").toString("utf8")) as Record<string, unknown>;
  claims["j"] = jobId;
  return `${Buffer.from(JSON.stringify(claims), "utf8").toString("base64url")}.${sig}`;
}

/** Where a runner gets its clients: a driver's (registers and deregisters) and one lambda's per job. */
export interface RunEnv {
  readonly driver: PocketClient;
  readonly transport: ClientTransport;
  connectLambda(credentials: string | undefined, transport: ClientTransport): Promise<PocketClient>;
}

interface CaseJob {
  readonly token: string;
  readonly jobId: string;
  readonly lambda: PocketClient;
  registered: boolean;
}

/** Runs one case; throws an Error naming the case, the step and what differed. */
export async function runCase(c: Case, caseIndex: number, env: RunEnv, cluster: Cases["cluster"]): Promise<void> {
  const jobs = new Map<string, CaseJob>();
  try {
    for (const name of c.jobs ?? ["main"]) {
      const reg = await env.driver.registerJob(`conformance-${caseIndex}-${name}`, {}, { renew: false });
      const lambda = await env.connectLambda(reg.credentials, env.transport);
      jobs.set(name, { token: reg.token, jobId: reg.jobId, lambda, registered: true });
      await checkLimits(lambda, reg.token, cluster);
    }
    for (const [i, step] of c.steps.entries()) {
      const outcome = await runStep(step, jobs, env).then((value) => ({ value }), (error: unknown) => ({ error }));
      const why = mismatch(step, outcome);
      if (why !== undefined) throw new Error(`case "${c.name}", step ${i} (${step.op} ${JSON.stringify(step.path ?? "")}): ${why}`);
    }
  } finally {
    for (const j of jobs.values()) {
      if (j.registered) await env.driver.deregisterJob(j.token);
      await j.lambda.close();
    }
  }
}

async function checkLimits(lambda: PocketClient, token: string, cluster: Cases["cluster"]): Promise<void> {
  const job = lambda.job(token);
  const info = await lambda.shardInfo(job.shardId, job.jobId);
  if (info.inlineBytesMax !== cluster.inlineBytesMax || info.extentBytesMax !== cluster.extentBytesMax) {
    throw new Error(`the cases are written for ${JSON.stringify(cluster)}; the shard has inline ${info.inlineBytesMax}, extents ${info.extentBytesMax}`);
  }
}

function handleFor(step: Step, jobs: ReadonlyMap<string, CaseJob>): { job: PocketJob; owner: CaseJob } {
  const owner = jobs.get(step.job ?? "main");
  if (!owner) throw new Error(`the step names a job ${step.job} the case does not register`);
  if (step.token !== "forged") return { job: owner.lambda.job(owner.token), owner };
  const victim = jobs.get(step.forgedFor ?? "");
  if (!victim) throw new Error(`a forged token for ${step.forgedFor}, a job the case does not register`);
  return { job: owner.lambda.job(forgeToken(owner.token, victim.jobId)), owner };
}

async function* pieces(bytes: Buffer, pieceBytes: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.byteLength; at += pieceBytes) yield bytes.subarray(at, at + pieceBytes);
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** Runs one step; resolves with what the SDK returned (comparable with the step's expect). */
async function runStep(step: Step, jobs: ReadonlyMap<string, CaseJob>, env: RunEnv): Promise<unknown> {
  const { job, owner } = handleFor(step, jobs);
  const p = step.path ?? "";
  switch (step.op) {
    case "put": return job.put(p, dataOf(step.data!), { createOnly: step.createOnly });
    case "get": return job.get(p, step.range ?? {});
    case "putStream": return job.putStream(p, pieces(dataOf(step.data!), step.pieceBytes!), { size: step.declareSize, createOnly: step.createOnly });
    case "getStream": return collect(job.getStream(p, step.range ?? {}));
    case "stat": return job.stat(p);
    case "list": return job.list(p, { after: step.after, limit: step.limit });
    case "count": return job.count(p, { recursive: step.recursive });
    case "delete": return job.delete(p, { recursive: step.recursive });
    case "mkdir": return job.mkdir(p).then(() => ({}));
    case "exists": return job.exists(p).then((value) => ({ value }));
    case "deregister":
      owner.registered = false;
      return env.driver.deregisterJob(owner.token).then(() => ({}));
    default: throw new Error(`unknown op ${step.op}`);
  }
}

/** Why the outcome is not what the step expects, or undefined when it is. */
function mismatch(step: Step, outcome: { value?: unknown; error?: unknown }): string | undefined {
  const wanted = step.expect["error"];
  if ("error" in outcome) {
    const e = outcome.error;
    if (typeof wanted === "string" && isPocketError(e, wanted as never)) return undefined;
    return `expected ${typeof wanted === "string" ? `a ${wanted} error` : "success"}, got ${isPocketError(e) ? `${e.code}: ${e.message}` : String(e)}`;
  }
  if (typeof wanted === "string") return `expected a ${wanted} error, got ${describe(outcome.value)}`;
  return compare(step, outcome.value);
}

function describe(value: unknown): string {
  return Buffer.isBuffer(value) ? `${value.byteLength} bytes` : JSON.stringify(value);
}

function compare(step: Step, value: unknown): string | undefined {
  const expect = step.expect;
  if (step.op === "get" || step.op === "getStream") {
    const want = dataOf(expect["data"] as DataSpec);
    const got = value as Buffer;
    if (got.equals(want)) return undefined;
    const at = [...Array(Math.min(got.byteLength, want.byteLength)).keys()].find((i) => got[i] !== want[i]);
    return `got ${got.byteLength} bytes, expected ${want.byteLength}${at !== undefined ? `; first difference at byte ${at}` : ""}`;
  }
  if (step.op === "list") return compareList(expect, value as { entries: Array<Record<string, unknown>>; more: boolean });
  const got = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(expect)) {
    if (got[k] !== v) return `${k}: got ${JSON.stringify(got[k])}, expected ${JSON.stringify(v)} (result ${describe(value)})`;
  }
  return undefined;
}

function compareList(expect: Readonly<Record<string, unknown>>, got: { entries: Array<Record<string, unknown>>; more: boolean }): string | undefined {
  const want = expect["entries"] as Array<Record<string, unknown>>;
  const fits = got.entries.length === want.length && want.every((w, i) => Object.entries(w).every(([k, v]) => got.entries[i]![k] === v));
  if (!fits || got.more !== expect["more"]) return `listed ${JSON.stringify(got)}, expected ${JSON.stringify({ entries: want, more: expect["more"] })}`;
  return undefined;
}
