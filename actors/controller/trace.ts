import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import type { ControllerInput } from "./inputs";

/** Largest trace file before it is rotated to `<file>.1`. */
const traceBytesMax = 256 * 1024 * 1024;
/** Bytes buffered for the file at most; past that, inputs are counted as dropped rather than held in memory. */
const bufferedBytesMax = 8 * 1024 * 1024;

/**
 * Appends controller inputs to an NDJSON file, one per line, without
 * blocking the controller: writes are buffered up to a bound, and the file
 * rotates once at `traceBytesMax`.
 */
export class TraceWriter {
  #out: fs.WriteStream;
  #bytes: number;
  dropped = 0;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.#bytes = fs.existsSync(file) ? fs.statSync(file).size : 0;
    this.#out = fs.createWriteStream(file, { flags: "a" });
  }

  write(input: ControllerInput): void {
    if (this.#out.writableLength > bufferedBytesMax) {
      this.dropped++;
      return;
    }
    const line = `${JSON.stringify(input)}\n`;
    if (this.#bytes + line.length > traceBytesMax) this.#rotate();
    this.#bytes += line.length;
    this.#out.write(line);
  }

  #rotate(): void {
    this.#out.end();
    fs.renameSync(this.file, `${this.file}.1`);
    this.#out = fs.createWriteStream(this.file, { flags: "a" });
    this.#bytes = 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#out.end(() => resolve()));
  }
}

/** Reads a trace: inputs in file order. Blank lines and `#` comments are skipped; a bad line is an error naming it. */
export async function* readTrace(file: string): AsyncGenerator<ControllerInput> {
  const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new Error(`${file}:${n}: not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (typeof v !== "object" || v === null || typeof (v as { kind?: unknown }).kind !== "string" || typeof (v as { atMs?: unknown }).atMs !== "number") {
      throw new Error(`${file}:${n}: an input needs "kind" and "atMs"`);
    }
    yield v as ControllerInput;
  }
}
