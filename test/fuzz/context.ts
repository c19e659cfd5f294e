import { TokenClass, type TokenOracle } from "./expect";
import type { FrameLimits } from "./wire";

/**
 * What fuzz cases aim at: the servers' addresses and keys, the jobs the
 * fuzzer acts as, tokens of every kind, and ids no one uses. Cases are a pure
 * function of (seed, index, context).
 */

/** A direct-transport server, as a client is told of it. */
export interface TcpEndpoint {
  readonly service: "shardJob" | "nodeJob";
  readonly id: string;
  readonly addr: string;
  /** Its transport key (raw Ed25519, base64url): its reply to a hello must be signed with it. */
  readonly key: string;
  /** The frame lengths it takes once a client has authenticated, as far as a client can know them. */
  readonly limits: FrameLimits;
}

/** A job the fuzzer may act as: its id and a live token (its lambda credential is the runner's business). */
export interface FuzzJob {
  readonly jobId: string;
  readonly token: string;
}

/** Who sends a NATS message: each has a credential that may publish where it sends. */
export const Sender = {
  /** The fuzz job's lambda (its own job subjects). */
  Lambda: "lambda",
  /** The other job's lambda. */
  OtherLambda: "other-lambda",
  Driver: "driver",
  Operator: "operator",
  Controller: "controller",
  /** The shard's identity (its heartbeat and usage subjects; extent reads and writes on nodes). */
  Shard: "shard",
  /** The first node's identity (its heartbeat subject). */
  Node: "node",
  /** A node and a shard no one runs, with credentials of their own. */
  GhostNode: "ghost-node",
  GhostShard: "ghost-shard",
} as const;
export type Sender = (typeof Sender)[keyof typeof Sender];

/** Everything cases aim at. */
export interface GenContext {
  readonly shardId: string;
  readonly shard: TcpEndpoint;
  readonly nodes: readonly TcpEndpoint[];
  readonly inlineBytesMax: number;
  readonly extentBytesMax: number;
  /** The job whose live token and lambda the fuzzer uses. */
  readonly job: FuzzJob;
  /** A second live job: its token is "another job's". */
  readonly other: FuzzJob;
  /** Tokens that must not work: signed for a job that does not exist, for another shard, expired; forged and malformed ones. */
  readonly tokens: {
    readonly ghost: string;
    /** Signed for each of `ghostJobIds`, in order. */
    readonly attachable: readonly string[];
    readonly wrongShard: string;
    readonly expired: string;
    readonly forged: readonly string[];
  };
  readonly ghostNodeId: string;
  readonly ghostShardId: string;
  /** Write grants and receipts signed as the cluster signs them (so extent writes get past the grant check). */
  grant(claims: { jobId: string; nodeId: string; extentId: string; length: number }): string;
  receipt(claims: { jobId: string; nodeId: string; extentId: string; length: number; crc: number }): string;
}

const oracles = new WeakMap<GenContext, TokenOracle>();
/** What each kind of token is, for expectations. */
export function tokenOracle(ctx: GenContext): TokenOracle {
  const cached = oracles.get(ctx);
  if (cached) return cached;
  const known = new Map<string, { cls: TokenClass; jobId?: string }>([
    [ctx.job.token, { cls: TokenClass.Live, jobId: ctx.job.jobId }],
    [ctx.other.token, { cls: TokenClass.Live, jobId: ctx.other.jobId }],
    [ctx.tokens.ghost, { cls: TokenClass.Ghost, jobId: ghostTokenJobId }],
    ...ctx.tokens.attachable.map((token, i) => [token, { cls: TokenClass.Attachable, jobId: ghostJobIds[i]! }] as const),
    [ctx.tokens.wrongShard, { cls: TokenClass.WrongShard, jobId: ctx.job.jobId }],
    [ctx.tokens.expired, { cls: TokenClass.Expired, jobId: ctx.job.jobId }],
  ]);
  const oracle: TokenOracle = (token) => known.get(token) ?? known.get(canonicalToken(token)) ?? { cls: TokenClass.Bad };
  oracles.set(ctx, oracle);
  return oracle;
}

/**
 * A token with its signature re-encoded from the bytes it decodes to: the
 * servers compare signatures as bytes after a lenient base64url decoding
 * (stray characters and unused low bits are ignored), so such variants of a
 * live token are that token.
 */
function canonicalToken(token: string): string {
  const dot = token.indexOf(".");
  if (dot <= 0 || dot !== token.lastIndexOf(".")) return token;
  return `${token.slice(0, dot)}.${Buffer.from(token.slice(dot + 1), "base64url").toString("base64url")}`;
}

/** Job ids the controller never registered; control cases name them (and may attach them to the shard, with any weights). */
export const ghostJobIds = ["j-fuzzghost0", "j-fuzzghost1", "fz-ghost.2", "fz_ghost-3"];
/** The job the ghost token is for: never registered, never attached (no request names it). */
export const ghostTokenJobId = "j-fuzz-never";
/** Paths of the fuzz job's namespace: few, so what it stores stays bounded. */
export const paths = ["a", "a/b", "a/b/c", "d1", "d1/x", "d1/y", "deep/1/2/3", "x.bin", "ünï/cödé", "/a/", "a/b/", "big"];
export const oddPaths = ["", "/", "..", "a/../b", "a//b", "./a", "a\u0000b", "x".repeat(256), `${"y/".repeat(511)}y`, "z".repeat(1025), "\ud800", "a/.", " ", "\\"];
/** Extent ids the fuzz job writes and reads: bounded, so node memory is too. */
export const extentIds = Array.from({ length: 256 }, (_, i) => `fz-e${i}`);
