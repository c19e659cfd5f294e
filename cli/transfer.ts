import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import type { PocketJob } from "../client/pocket";
import { ProgressBar } from "../lib/progress";

/** Transfers of at least this many bytes show progress on a terminal (smaller ones are over before a bar would help). */
export const progressBytesMin = 8 * 1024 * 1024;
/** Files up to this size are put in one call; larger ones, and standard input, are streamed. */
const putWholeBytesMax = 64 * 1024;
/** Bytes read from a file at a time when streaming it (one extent). */
const readChunkBytes = 1024 * 1024;

/** A transfer stopped by SIGINT or SIGTERM: the CLI exits 128 + the signal's number, as a shell expects. */
export class InterruptedError extends Error {
  override readonly name = "InterruptedError";
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/**
 * Progress of one transfer on stderr. `forced`: --progress (true) or
 * --no-progress (false); undefined: shown on a terminal only, once the
 * transfer is known to be (or has become) at least `progressBytesMin`.
 */
class TransferProgress {
  #bar: ProgressBar | undefined;
  #done = 0;
  readonly #startMs = Date.now();

  constructor(private readonly label: string, private readonly total: number | undefined, private readonly forced: boolean | undefined) {
    if (this.#wanted(total ?? 0)) this.#bar = new ProgressBar(label, { total });
  }

  /** Whether stderr is a terminal and `forced` does not say otherwise: worth asking for the size to decide. */
  static mayShow(forced: boolean | undefined): boolean {
    return forced ?? process.stderr.isTTY === true;
  }

  #wanted(bytes: number): boolean {
    if (this.forced !== undefined) return this.forced;
    return process.stderr.isTTY === true && bytes >= progressBytesMin;
  }

  add(n: number): void {
    this.#done += n;
    if (!this.#bar && this.total === undefined && this.#wanted(this.#done)) {
      this.#bar = new ProgressBar(this.label, { startMs: this.#startMs });
      this.#bar.add(this.#done);
      return;
    }
    this.#bar?.add(n);
  }

  finish(): void { this.#bar?.finish(); }
  fail(): void { this.#bar?.fail(); }

  /** Passes chunks through, counting them. */
  counter(): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
    const self = this;
    return async function* count(source) {
      for await (const chunk of source) {
        self.add(chunk.byteLength);
        yield chunk;
      }
    };
  }
}

/**
 * Runs `fn` with a signal that SIGINT or SIGTERM aborts; the transfer then
 * fails with InterruptedError (after `fn` has cleaned up).
 */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const on = (signal: NodeJS.Signals): void => {
    caught = signal;
    ac.abort(new InterruptedError(signal));
  };
  process.once("SIGINT", on);
  process.once("SIGTERM", on);
  try {
    return await fn(ac.signal);
  } catch (e) {
    throw caught !== undefined ? new InterruptedError(caught) : e;
  } finally {
    process.off("SIGINT", on);
    process.off("SIGTERM", on);
  }
}

export interface TransferOptions {
  /** --progress (true), --no-progress (false), or neither. */
  readonly progress?: boolean;
  readonly createOnly?: boolean;
}

/**
 * Stores a file, or standard input (`-`), as `key`, streaming: the CLI's
 * memory does not grow with the object (at most the SDK's extents in flight).
 */
export async function putFile(job: PocketJob, key: string, file: string, options: TransferOptions = {}): Promise<{ version: number; size: number }> {
  const stat = file === "-" ? undefined : await fs.promises.stat(file);
  const size = stat?.isFile() ? stat.size : undefined;
  if (size !== undefined && size <= putWholeBytesMax && options.progress !== true) {
    return job.put(key, await fs.promises.readFile(file), { createOnly: options.createOnly });
  }
  const progress = new TransferProgress("put", size, options.progress);
  return interruptible(async (signal) => {
    const source: Readable = file === "-" ? process.stdin : fs.createReadStream(file, { highWaterMark: readChunkBytes, signal });
    if (file === "-") signal.addEventListener("abort", () => source.destroy(signal.reason as Error), { once: true });
    try {
      const r = await job.putStream(key, progress.counter()(source), { size, createOnly: options.createOnly });
      progress.finish();
      return r;
    } catch (e) {
      progress.fail();
      throw e;
    }
  });
}

/** The object's size when progress may be shown (one stat first), else undefined: a piped get asks nothing more than the get. */
async function sizeForProgress(job: PocketJob, key: string, forced: boolean | undefined): Promise<number | undefined> {
  if (!TransferProgress.mayShow(forced)) return undefined;
  const s = await job.stat(key);
  return s.type === "object" ? s.size : undefined;
}

/**
 * Writes `key` to a file: into a temporary file beside it, renamed over the
 * destination once every byte is in and synced. On any failure (a typed
 * error, a node gone, an interrupt) the temporary file is removed: no file
 * is left, and an existing destination is untouched. A destination that is
 * a directory gets the key's last segment as its name.
 */
export async function getToFile(job: PocketJob, key: string, dest: string, options: TransferOptions = {}): Promise<string> {
  const target = (await isDirectory(dest)) ? path.join(dest, path.posix.basename(key)) : dest;
  const progress = new TransferProgress("get", await sizeForProgress(job, key, options.progress), options.progress);
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.pocket-${randomBytes(6).toString("hex")}.part`);
  const fh = await fs.promises.open(temp, "wx", 0o666).catch((e: unknown) => {
    throw new Error(`cannot write ${target}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  try {
    await interruptible(async (signal) => {
      // The stream closes the file once every byte is in and synced (flush), or when the pipeline fails.
      await pipeline(job.getStream(key), progress.counter(), fh.createWriteStream({ flush: true }), { signal });
      signal.throwIfAborted();
      await fs.promises.rename(temp, target);
    });
    progress.finish();
    return target;
  } catch (e) {
    progress.fail();
    await fs.promises.rm(temp, { force: true });
    throw e;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(p)).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

/**
 * Writes `key` to standard output. Bytes already written to a pipe cannot be
 * taken back: a failure exits non-zero after them. When standard output is a
 * regular file (`> out.bin`, `>> log`), a failure truncates it back to where
 * it stood, so no partial object is left in it.
 */
export async function getToStdout(job: PocketJob, key: string, options: TransferOptions = {}): Promise<void> {
  const stdout = fs.fstatSync(1);
  const startBytes = stdout.isFile() ? stdout.size : undefined;
  const progress = new TransferProgress("get", await sizeForProgress(job, key, options.progress), options.progress);
  try {
    await interruptible((signal) => pipeline(job.getStream(key), progress.counter(), process.stdout, { signal, end: false }));
    progress.finish();
  } catch (e) {
    progress.fail();
    if (startBytes !== undefined) fs.ftruncateSync(1, startBytes);
    throw e;
  }
}
