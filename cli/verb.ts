import { InvalidArgumentError, Option } from "commander";
import { parseBytes, parseDuration, parseRate, UnitError } from "../lib/units";
import { ClientTransport } from "../client/pocket";
import type { EnvName } from "./env-vars";

/**
 * A usage error found by a verb itself (a token for another job, a missing
 * flag it needs): printed with the verb's usage, exit code 2.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Every flag any verb takes, as commander names them (camelCase); each verb accepts only its own. */
export interface Flags {
  readonly nats?: string;
  readonly token?: string;
  readonly creds?: string;
  readonly tlsCa?: string;
  readonly transport?: ClientTransport;
  readonly json?: boolean;
  readonly progress?: boolean;
  readonly createOnly?: boolean;
  readonly recursive?: boolean;
  // pocket up
  readonly authDir?: string;
  readonly tls?: boolean;
  readonly tlsHost?: string[];
  readonly dram?: number;
  readonly shards?: number;
  readonly dramCapacity?: number;
  readonly dataDir?: string;
  readonly nvme?: number;
  readonly nvmeFileSize?: number;
  readonly nvmeDevice?: string;
  readonly nvmeModel?: string;
  readonly minNodes?: number;
  readonly maxNodes?: number;
  readonly store?: string;
  readonly orchestrator?: "local" | "events-only";
  // dashboard
  readonly host?: string;
  readonly port?: number;
  readonly allowHost?: string[];
  // k8s secrets
  readonly namespace?: string;
  readonly driver?: string[];
  readonly operator?: string;
  readonly postgresUrl?: string;
  readonly postgresUrlFile?: string;
  readonly force?: boolean;
  // events, replay
  readonly follow?: boolean;
  readonly inputs?: boolean;
  readonly stream?: boolean;
  readonly expect?: string;
  readonly write?: string;
  // calibrate
  readonly device?: string;
  readonly size?: number;
  readonly latency?: number;
  readonly seconds?: number;
  readonly out?: string;
  // job register
  readonly lambdas?: number;
  readonly capacity?: number;
  readonly throughput?: number;
  readonly latencySensitive?: boolean;
  readonly readRatio?: number;
  readonly lease?: number;
}

/** The help groups verbs are listed under. */
export const VerbGroup = { Cluster: "Cluster:", Jobs: "Jobs:", Objects: "Objects (JOB must be the job of the token):" } as const;
export type VerbGroup = (typeof VerbGroup)[keyof typeof VerbGroup];

/** One positional argument: commander syntax (`<job>`, `[file]`) and what it is. */
export interface VerbArgument {
  readonly syntax: string;
  readonly description: string;
}

/**
 * One verb of the `pocket` command, declared once: its words, arguments,
 * flags, the environment it reads and an example; the program (cli/program.ts)
 * builds its parser and help from this.
 */
export interface Verb {
  /** Words after `pocket`: ["put"], or ["job", "register"]. */
  readonly words: readonly string[];
  readonly group: VerbGroup;
  readonly summary: string;
  /** More than the summary, for `pocket help VERB`. */
  readonly details?: string;
  readonly args: readonly VerbArgument[];
  readonly options: readonly Option[];
  readonly env: readonly EnvName[];
  readonly examples: readonly string[];
  /** Runs the verb with its positional arguments (in order; absent optional ones undefined) and its flags. */
  readonly run: (args: ReadonlyArray<string | undefined>, flags: Flags) => Promise<void>;
}

/** Wraps a parser of flag values so that its errors are commander's (a usage error naming the flag). */
function parser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (e) {
      if (e instanceof UnitError || e instanceof RangeError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

/** A whole number ≥ 0. */
export const count = parser((text) => {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < 0) throw new RangeError(`takes a whole number, not ${JSON.stringify(text)}`);
  return n;
});
/** A number > 0. */
export const positive = parser((text) => {
  const n = Number(text);
  if (text.trim() === "" || !(n > 0)) throw new RangeError(`takes a positive number, not ${JSON.stringify(text)}`);
  return n;
});
/** A number from 0 to 1. */
export const ratio = parser((text) => {
  const n = Number(text);
  if (text.trim() === "" || !(n >= 0 && n <= 1)) throw new RangeError(`takes a number from 0 to 1, not ${JSON.stringify(text)}`);
  return n;
});
export const bytes = parser(parseBytes);
export const rate = parser(parseRate);
export const duration = parser(parseDuration);
/** A comma-separated list (empty items dropped). */
export const list = parser((text) => text.split(",").map((s) => s.trim()).filter((s) => s.length > 0));

/** The flags of verbs that reach the cluster: where it is, which credential and CA. */
export function connectionOptions(credentialEnv: string): Option[] {
  return [
    new Option("--nats <url>", "the cluster's NATS URL (else POCKET_NATS_URL, else nats://127.0.0.1:4222)"),
    new Option("--creds <file>", `a NATS creds file to connect with (else ${credentialEnv})`),
    new Option("--tls-ca <file>", "the CA certificate of a cluster that runs TLS (else POCKET_TLS_CA)"),
  ];
}

export const jsonOption = (): Option => new Option("--json", "machine-readable output (JSON)");
export const tokenOption = (): Option => new Option("--token <token>", "the job's capability token (else POCKET_TOKEN)");
export const transportOption = (): Option =>
  new Option("--transport <transport>", "how object bytes travel: auto (direct TCP to the nodes) or nats (everything over NATS)")
    .choices(Object.values(ClientTransport));

/** Writes `value` as JSON with --json, else the text. */
export function output(flags: Flags, value: unknown, text: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

/** Rows as aligned columns (the last column unpadded). */
export function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

/** A fraction as a whole percentage. */
export function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

