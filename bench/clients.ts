/**
 * The benchmark's client processes: forked, each with one connection to every
 * system compared, given work by message and answering with its result.
 */
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { FromWorker, Work, WorkerSetup, WorkResult } from "./work";

/** Client processes at most: the 2 cores are shared with every server. */
export const clientProcessesMax = 16;

/** How long a client process has to connect and say it is ready. */
const readyTimeoutMs = 30_000;

interface Client { readonly child: ChildProcess; readonly index: number }

/** Forks client process `index` and resolves once it is connected to every system. */
async function forkClient(setup: WorkerSetup): Promise<Client> {
  const child = fork(path.join(__dirname, "worker.js"), [], {
    env: { ...process.env, POCKET_BENCH_SETUP: JSON.stringify(setup) },
    // POCKET_BENCH_NODE_ARGS: flags for the client processes, e.g. to profile them.
    execArgv: ["--expose-gc", ...(process.env["POCKET_BENCH_NODE_ARGS"] ?? "").split(/\s+/).filter((a) => a.length > 0)],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client ${setup.index} was not ready within ${readyTimeoutMs} ms`)), readyTimeoutMs);
      child.once("message", (m: FromWorker) => {
        clearTimeout(timer);
        if (m.kind === "ready") resolve();
        else reject(new Error(`client ${setup.index} failed to start`));
      });
      child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`client ${setup.index} exited with ${code}`)); });
    });
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return { child, index: setup.index };
}

/** Ends a client process: it closes its connections when the driver lets go of it. */
function endClient(c: Client): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => c.child.once("exit", () => resolve()));
  const timer = setTimeout(() => c.child.kill("SIGKILL"), 10_000);
  if (c.child.connected) c.child.disconnect();
  else c.child.kill("SIGTERM");
  return exited.finally(() => clearTimeout(timer));
}

/** A fixed number of client processes (at most `clientProcessesMax`). */
export class ClientPool {
  readonly #clients: Client[] = [];
  #nextId = 1;

  private constructor(private readonly base: Omit<WorkerSetup, "index">) {}

  /** Forks `count` client processes. */
  static async start(base: Omit<WorkerSetup, "index">, count: number): Promise<ClientPool> {
    if (!Number.isInteger(count) || count < 1 || count > clientProcessesMax) throw new RangeError(`client processes: ${count}, expected 1..${clientProcessesMax}`);
    const pool = new ClientPool(base);
    try {
      for (let i = 0; i < count; i++) pool.#clients.push(await forkClient({ ...base, index: i }));
    } catch (e) {
      await pool.stop();
      throw e;
    }
    return pool;
  }

  get size(): number { return this.#clients.length; }

  /** Each client's role and pid, for the report of what ran where. */
  get pids(): Array<{ role: string; pid: number | undefined }> {
    return this.#clients.map((c) => ({ role: `client ${c.index}`, pid: c.child.pid }));
  }

  /** Runs `work` on client `index`. */
  run(index: number, work: Work): Promise<WorkResult> {
    const c = this.#clients[index];
    if (!c) throw new RangeError(`no client ${index}`);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => {
        c.child.off("message", onMessage);
        reject(new Error(`client ${c.index} exited with ${code} during ${work.kind} work`));
      };
      const onMessage = (m: FromWorker): void => {
        if (m.kind === "ready" || m.id !== id) return;
        c.child.off("message", onMessage);
        c.child.off("exit", onExit);
        if (m.kind === "done") resolve(m.result);
        else reject(new Error(`client ${c.index}: ${m.message}`));
      };
      c.child.on("message", onMessage);
      c.child.once("exit", onExit);
      c.child.send({ kind: "work", id, work });
    });
  }

  /** Runs the same work on the first `n` clients at once; returns their results. */
  onClients(n: number, work: Work): Promise<WorkResult[]> {
    if (n > this.#clients.length) throw new RangeError(`${n} clients asked for, ${this.#clients.length} running`);
    return Promise.all(this.#clients.slice(0, n).map((c) => this.run(c.index, work)));
  }

  /** Replaces client `index` with a freshly forked one (whose memory holds nothing earlier work left behind). */
  async renew(index: number): Promise<void> {
    const old = this.#clients[index];
    if (!old) throw new RangeError(`no client ${index}`);
    await endClient(old);
    this.#clients[index] = await forkClient({ ...this.base, index });
  }

  /** Ends every client process. */
  async stop(): Promise<void> {
    for (const c of this.#clients) await endClient(c);
  }
}
