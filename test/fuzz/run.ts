import net from "node:net";
import v8 from "node:v8";
import vm from "node:vm";
import type { NatsConnection } from "@nats-io/transport-node";
import { natsRequestError } from "../../bus/nats-rpc";
import { ErrorHeaders } from "../../bus/subjects";
import { generateCase, type FuzzCase, type GenContext, type NatsPublishCase, type NatsRequestCase, type Sender, type TcpCase } from "./generate";
import { judgeReply, judgeTcpSession, natsReplyView, tcpSessionDone, type TcpObserved } from "./oracle";
import { readServerFrames, type WireFrame } from "./wire";

/** What the runner needs of a started cluster. */
export interface FuzzWorld {
  readonly ctx: GenContext;
  /** The connection each sender publishes with (its credential may publish where its cases send). */
  connection(sender: Sender): NatsConnection;
  /** Checks that normal use still works; returns what does not. */
  health(batch: number): Promise<string[]>;
  /** Bytes each reachable direct-transport server holds now (`stats.inflightBytes`); empty when none is reachable. */
  inflightBytes(): number[];
}

export interface FuzzOptions {
  readonly seed: number;
  /** Index of the first case. */
  readonly from: number;
  readonly cases: number;
  /** Cases in flight at once. */
  readonly concurrency: number;
  /** Cases between health checks. */
  readonly batchCases: number;
  /** No new case starts after this long. */
  readonly timeLimitMs: number;
  /** A request unanswered, or a connection not closed as due, after this long is a hang. */
  readonly caseTimeoutMs: number;
  /** Progress lines on `log` this often; 0 for none. */
  readonly progressIntervalMs: number;
  /** Largest rise of the process's resident set over the run. */
  readonly rssGrowthMaxBytes: number;
  /** Largest rise of the heap still in use after a full collection, from before the run to after it. */
  readonly heapGrowthMaxBytes: number;
  /** Failures kept in the report (all are counted). */
  readonly failuresKeptMax: number;
  readonly log: (line: string) => void;
}

export const defaultFuzzOptions: Omit<FuzzOptions, "seed" | "cases"> = {
  from: 0,
  concurrency: 32,
  batchCases: 1000,
  timeLimitMs: 3_600_000,
  caseTimeoutMs: 10_000,
  progressIntervalMs: 0,
  rssGrowthMaxBytes: 768 * 1024 * 1024,
  heapGrowthMaxBytes: 96 * 1024 * 1024,
  failuresKeptMax: 50,
  log: (line) => process.stderr.write(`${line}\n`),
};

export interface FuzzFailure {
  /** Case index, or the first index of the batch a health or memory check failed after. */
  readonly index: number;
  readonly kind: string;
  readonly note: string;
  readonly problems: readonly string[];
  /** The command that runs this case again. */
  readonly replay: string;
}

export interface FuzzReport {
  readonly seed: number;
  readonly from: number;
  readonly casesRun: number;
  readonly elapsedMs: number;
  readonly casesPerSec: number;
  readonly stoppedBy: "cases" | "time" | "crash";
  readonly failuresTotal: number;
  readonly failures: readonly FuzzFailure[];
  /** Cases run of each kind, and error codes seen. */
  readonly kinds: Readonly<Record<string, number>>;
  readonly codes: Readonly<Record<string, number>>;
  /** Replies (not errors) per operation: how deep the cases got. */
  readonly replies: Readonly<Record<string, number>>;
  readonly memory: MemoryReport;
}

export interface MemoryReport {
  readonly rssStartBytes: number;
  readonly rssPeakBytes: number;
  /** Heap in use after a full collection, before and after the run (equal to the plain readings when collection is not available). */
  readonly heapStartBytes: number;
  readonly heapEndBytes: number;
  readonly collected: boolean;
  /** Largest `inflightBytes` seen on any reachable direct-transport server; undefined when none is reachable. */
  readonly inflightPeakBytes: number | undefined;
}

/** The command that replays case `index` of `seed` alone. */
export function replayCommand(seed: number, index: number): string {
  return `npm run fuzz -- --seed ${seed} --from ${index} --cases 1`;
}

/**
 * Runs cases `from .. from + cases` of `seed` against a world, `concurrency`
 * at a time, checking health after every batch and memory over the run.
 *
 * @example
 *   const report = await runFuzz(world, { ...defaultFuzzOptions, seed: 1, cases: 10_000 });
 *   if (report.failuresTotal > 0) console.error(report.failures[0]!.replay);
 */
export async function runFuzz(world: FuzzWorld, options: FuzzOptions): Promise<FuzzReport> {
  const run = new Run(world, options);
  return run.execute();
}

class Run {
  readonly #failures: FuzzFailure[] = [];
  #failuresTotal = 0;
  readonly #kinds: Record<string, number> = {};
  readonly #codes: Record<string, number> = {};
  readonly #replies: Record<string, number> = {};
  readonly #inFlight = new Set<number>();
  #done = 0;
  #crashed = false;
  readonly #started = performance.now();
  #rssPeak = 0;
  #inflightPeak: number | undefined;

  constructor(private readonly world: FuzzWorld, private readonly o: FuzzOptions) {}

  async execute(): Promise<FuzzReport> {
    const collected = collectGarbage();
    const heapStart = process.memoryUsage().heapUsed;
    const rssStart = process.memoryUsage().rss;
    const sampler = setInterval(() => this.#sample(), 100);
    const progress = this.o.progressIntervalMs > 0 ? setInterval(() => this.#progress(), this.o.progressIntervalMs) : undefined;
    const onCrash = (e: unknown): void => this.#crash(e);
    process.on("uncaughtException", onCrash);
    process.on("unhandledRejection", onCrash);
    let stoppedBy: FuzzReport["stoppedBy"] = "cases";
    try {
      const end = this.o.from + this.o.cases;
      for (let batch = this.o.from; batch < end && stoppedBy === "cases"; batch += this.o.batchCases) {
        const last = Math.min(end, batch + this.o.batchCases);
        await this.#batch(batch, last);
        if (this.#crashed) stoppedBy = "crash";
        else if (this.#done < this.o.cases && this.#elapsedMs() > this.o.timeLimitMs) stoppedBy = "time";
        await this.#flushPublishers();
        const problems = await this.world.health(Math.floor((batch - this.o.from) / this.o.batchCases));
        if (problems.length > 0) this.#fail(batch, "health", `after cases ${batch}..${last - 1}`, problems);
      }
    } finally {
      clearInterval(sampler);
      if (progress) clearInterval(progress);
      process.off("uncaughtException", onCrash);
      process.off("unhandledRejection", onCrash);
    }
    this.#sample();
    if (this.o.progressIntervalMs > 0) this.#progress();
    return this.#report(stoppedBy, rssStart, heapStart, collected);
  }

  #report(stoppedBy: FuzzReport["stoppedBy"], rssStart: number, heapStart: number, collected: boolean): FuzzReport {
    collectGarbage();
    const heapEnd = process.memoryUsage().heapUsed;
    const memory: MemoryReport = {
      rssStartBytes: rssStart, rssPeakBytes: this.#rssPeak, heapStartBytes: heapStart, heapEndBytes: heapEnd, collected, inflightPeakBytes: this.#inflightPeak,
    };
    const memoryProblems: string[] = [];
    if (memory.rssPeakBytes - rssStart > this.o.rssGrowthMaxBytes) memoryProblems.push(`resident set grew by ${mib(memory.rssPeakBytes - rssStart)} (bound ${mib(this.o.rssGrowthMaxBytes)})`);
    if (heapEnd - heapStart > this.o.heapGrowthMaxBytes) memoryProblems.push(`heap in use grew by ${mib(heapEnd - heapStart)} over the run (bound ${mib(this.o.heapGrowthMaxBytes)})`);
    if (memoryProblems.length > 0) this.#fail(this.o.from, "memory", `over cases ${this.o.from}..${this.o.from + this.#done - 1}`, memoryProblems);
    const elapsedMs = this.#elapsedMs();
    return {
      seed: this.o.seed, from: this.o.from, casesRun: this.#done, elapsedMs, casesPerSec: Math.round((this.#done * 1000) / Math.max(1, elapsedMs)),
      stoppedBy, failuresTotal: this.#failuresTotal, failures: this.#failures, kinds: this.#kinds, codes: this.#codes, replies: this.#replies, memory,
    };
  }

  /** Runs cases [first, last) with at most `concurrency` at once, stopping early past the time limit or on a crash. */
  async #batch(first: number, last: number): Promise<void> {
    let next = first;
    const worker = async (): Promise<void> => {
      while (next < last && !this.#crashed && this.#elapsedMs() <= this.o.timeLimitMs) {
        const index = next++;
        this.#inFlight.add(index);
        await this.#case(index);
        this.#inFlight.delete(index);
        this.#done++;
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(this.o.concurrency, last - first); i++) workers.push(worker());
    await Promise.all(workers);
  }

  async #case(index: number): Promise<void> {
    let c: FuzzCase;
    try {
      c = generateCase(this.world.ctx, this.o.seed, index);
    } catch (e) {
      this.#fail(index, "generator", "the case could not be generated", [String(e instanceof Error ? e.stack : e)]);
      return;
    }
    this.#kinds[c.kind] = (this.#kinds[c.kind] ?? 0) + 1;
    let problems: string[];
    try {
      problems = c.kind === "tcp" ? await this.#tcp(c) : c.kind === "nats-request" ? await this.#request(c) : this.#publish(c);
    } catch (e) {
      problems = [`the runner failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`];
    }
    if (problems.length > 0) this.#fail(index, c.kind, c.kind === "tcp" ? c.note : `${c.sender} → ${c.subject}: ${c.note}`, problems);
  }

  async #request(c: NatsRequestCase): Promise<string[]> {
    const nc = this.world.connection(c.sender);
    let reply;
    try {
      reply = await nc.request(c.subject, c.body, { timeout: this.o.caseTimeoutMs });
    } catch (e) {
      const typed = natsRequestError(e, c.subject, this.o.caseTimeoutMs);
      return [`no reply: ${typed.name}: ${typed.message}`];
    }
    const code = reply.headers?.get(ErrorHeaders.code) || undefined;
    if (code) this.#codes[code] = (this.#codes[code] ?? 0) + 1;
    else this.#replies[c.name] = (this.#replies[c.name] ?? 0) + 1;
    const view = natsReplyView(reply.data, code, reply.headers?.get(ErrorHeaders.message));
    if (typeof view === "string") return [view];
    const wrong = judgeReply(c.service, c.name, c.expect, view);
    return wrong ? [wrong] : [];
  }

  #publish(c: NatsPublishCase): string[] {
    this.world.connection(c.sender).publish(c.subject, c.body);
    return [];
  }

  async #tcp(c: TcpCase): Promise<string[]> {
    const seen = await tcpSession(c, this.o.caseTimeoutMs);
    const names = new Map<number, string>();
    for (const r of c.requests) names.set(r.requestId, names.has(r.requestId) ? "(shared request id)" : r.name);
    for (const f of seen.frames) {
      if (f.kind === 2) {
        const name = names.get(f.requestId) ?? "(handshake)";
        this.#replies[name] = (this.#replies[name] ?? 0) + 1;
        continue;
      }
      const code = codeOf(f);
      this.#codes[code] = (this.#codes[code] ?? 0) + 1;
    }
    return [...(seen.failure ? [seen.failure] : []), ...judgeTcpSession(c, seen)];
  }

  async #flushPublishers(): Promise<void> {
    const senders: Sender[] = ["node", "shard", "ghost-node", "ghost-shard"];
    for (const s of senders) await this.world.connection(s).flush();
  }

  #fail(index: number, kind: string, note: string, problems: string[]): void {
    this.#failuresTotal++;
    if (this.#failures.length < this.o.failuresKeptMax) {
      this.#failures.push({ index, kind, note, problems, replay: replayCommand(this.o.seed, index) });
    }
  }

  #crash(e: unknown): void {
    if (this.#crashed) return;
    this.#crashed = true;
    const running = [...this.#inFlight].sort((a, b) => a - b);
    this.#fail(running[0] ?? this.o.from + this.#done, "crash",
      `an uncaught exception while cases ${running.join(", ")} ran (replay each alone: ${running.map((i) => `--from ${i}`).join(", ")})`,
      [e instanceof Error ? e.stack ?? e.message : String(e)]);
  }

  #sample(): void {
    this.#rssPeak = Math.max(this.#rssPeak, process.memoryUsage.rss());
    for (const b of this.world.inflightBytes()) this.#inflightPeak = Math.max(this.#inflightPeak ?? 0, b);
  }

  #progress(): void {
    const s = this.#elapsedMs() / 1000;
    this.o.log(`fuzz seed ${this.o.seed}: ${this.#done}/${this.o.cases} cases, ${Math.round(this.#done / Math.max(s, 0.001))}/s, `
      + `${this.#failuresTotal} failures, rss ${mib(process.memoryUsage.rss())}, ${s.toFixed(0)} s`);
  }

  #elapsedMs(): number {
    return performance.now() - this.#started;
  }
}

/** Once every answer due has come, how long a session waits for answers that may come. */
const settleMs = 250;

/** What a TCP session showed, plus a failure of the session itself (no connection). */
type Session = TcpObserved & { readonly failure?: string };

/**
 * Plays one TCP case: connect, send each handshake round and wait for its
 * reply, write the chunks one by one, then wait until the server has answered all it
 * must or closed the connection, or the deadline passes. Closes with a reset
 * when it closes first, so that a million sessions leave no sockets in TIME_WAIT.
 */
export async function tcpSession(c: TcpCase, timeoutMs: number): Promise<Session> {
  const colon = c.endpoint.addr.lastIndexOf(":");
  const socket = net.connect({ host: c.endpoint.addr.slice(0, colon), port: Number(c.endpoint.addr.slice(colon + 1)), noDelay: true });
  const frames: WireFrame[] = [];
  let rest: Buffer = Buffer.alloc(0);
  let closedByServer = false;
  let garbled: string | undefined;
  let weClosed = false;
  let wake: () => void = () => undefined;
  let lastEventAt = performance.now();
  const changed = (): void => {
    lastEventAt = performance.now();
    wake();
  };
  socket.on("data", (chunk: Buffer) => {
    const got = readServerFrames(rest.byteLength === 0 ? chunk : Buffer.concat([rest, chunk]));
    frames.push(...got.frames);
    rest = Buffer.from(got.rest);
    if (got.bad) garbled = got.bad;
    changed();
  });
  socket.on("end", () => { closedByServer = true; changed(); });
  socket.on("close", () => { if (!weClosed) closedByServer = true; changed(); });
  // Writes after the server closed fail with EPIPE or ECONNRESET; the close is what counts.
  socket.on("error", changed);
  const deadline = performance.now() + timeoutMs;
  /** Waits for `done`; past `optional()`, only while events keep coming (a settling time). */
  const until = async (done: () => boolean, optional: () => boolean = () => false): Promise<boolean> => {
    while (!done()) {
      const left = optional() ? Math.min(deadline, lastEventAt + settleMs) - performance.now() : deadline - performance.now();
      if (left <= 0) return optional();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => { clearTimeout(timer); resolve(); };
      });
    }
    return true;
  };
  const observed = (): TcpObserved => ({ frames, closedByServer, ...(garbled !== undefined ? { garbled } : {}) });
  let connected = false;
  socket.once("connect", () => { connected = true; changed(); });
  try {
    if (!(await until(() => connected || closedByServer))) return { ...observed(), failure: `no connection to ${c.endpoint.addr} within ${timeoutMs} ms` };
    if (!connected) return { ...observed(), failure: `could not connect to ${c.endpoint.addr}` };
    for (const [i, round] of c.rounds.entries()) {
      if (closedByServer || garbled !== undefined) break;
      socket.write(round);
      await until(() => frames.length > i || closedByServer || garbled !== undefined);
    }
    for (const chunk of c.chunks) {
      if (closedByServer || socket.destroyed) break;
      let written = false;
      socket.write(chunk, () => { written = true; changed(); });
      // Each chunk leaves in a write of its own (no coalescing on our side).
      if (!(await until(() => written || closedByServer))) return { ...observed(), failure: `the server stopped reading for ${timeoutMs} ms` };
    }
    await until(() => tcpSessionDone(c, observed()).settled, () => tcpSessionDone(c, observed()).done);
    return observed();
  } finally {
    weClosed = true;
    // A reset cannot follow a shutdown (the socket ends its side when the server ends its own): libuv refuses it and the
    // handle would stay open. The server closed first then, so this side leaves no TIME_WAIT anyway.
    if (closedByServer || socket.writableEnded) socket.destroy();
    else socket.resetAndDestroy();
  }
}

function codeOf(f: WireFrame): string {
  try {
    const v = JSON.parse(f.meta.toString("utf8")) as { code?: unknown };
    return typeof v.code === "string" ? v.code : "(none)";
  } catch (e) {
    if (e instanceof SyntaxError) return "(not JSON)";
    throw e;
  }
}

/** Runs a full collection if the runtime lets us; false when it does not. */
function collectGarbage(): boolean {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    v8.setFlagsFromString("--expose-gc");
    gc = vm.runInNewContext("typeof gc === 'function' ? gc : undefined") as (() => void) | undefined;
  }
  if (!gc) return false;
  gc();
  return true;
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
