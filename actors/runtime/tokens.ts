import { createHmac, timingSafeEqual } from "node:crypto";
import { UnauthorizedError } from "../../schemas/errors";
import type { Clock } from "./clock";

/** What a job capability token grants: one job's namespace, on one shard, until `expiresAtMs`. */
export interface JobClaims {
  readonly kind: "job";
  readonly jobId: string;
  readonly shardId: string;
  readonly expiresAtMs: number;
}

/** What cluster components present to each other. Never given to clients. */
export interface ClusterClaims {
  readonly kind: "cluster";
  readonly expiresAtMs: number;
}

export type Claims = JobClaims | ClusterClaims;

interface WireClaims { k: "job" | "cluster"; j?: string; s?: string; e: number }

/**
 * Signs and checks capability tokens: `base64url(claims) "." base64url(HMAC-SHA256)`.
 *
 * @example
 *   const t = new TokenAuthority(secret, clock);
 *   const token = t.issueJob("j-abc", "s0", 3_600_000);
 *   t.verifyJob(token).jobId === "j-abc";
 */
export class TokenAuthority {
  readonly #key: Buffer;
  /** Tokens whose signature was checked, with their claims: a lambda's requests then cost a map lookup, not an HMAC. */
  readonly #verified = new Map<string, Claims>();
  static readonly verifiedCacheMax = 8192;

  constructor(secret: string | Buffer, private readonly clock: Clock) {
    this.#key = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, "utf8");
    if (this.#key.byteLength < 16) throw new Error("the cluster secret must be at least 16 bytes");
  }

  issueJob(jobId: string, shardId: string, ttlMs: number): string {
    return this.#sign({ k: "job", j: jobId, s: shardId, e: this.clock.now() + ttlMs });
  }

  issueCluster(ttlMs: number): string {
    return this.#sign({ k: "cluster", e: this.clock.now() + ttlMs });
  }

  /** Checks a job token; with `jobId`, also that it is that job's. */
  verifyJob(token: string | undefined, jobId?: string): JobClaims {
    const c = this.verify(token);
    if (c.kind !== "job") throw new UnauthorizedError("a job token is required");
    if (jobId !== undefined && c.jobId !== jobId) throw new UnauthorizedError("the token is for another job");
    return c;
  }

  verifyCluster(token: string | undefined): ClusterClaims {
    const c = this.verify(token);
    if (c.kind !== "cluster") throw new UnauthorizedError("a cluster token is required");
    return c;
  }

  verify(token: string | undefined): Claims {
    if (token === undefined || token === "") throw new UnauthorizedError("a token is required");
    const known = this.#verified.get(token);
    if (known) {
      if (known.expiresAtMs <= this.clock.now()) {
        this.#verified.delete(token);
        throw new UnauthorizedError("token expired");
      }
      return known;
    }
    const claims = this.#verifySignature(token);
    if (this.#verified.size >= TokenAuthority.verifiedCacheMax) this.#verified.delete(this.#verified.keys().next().value!);
    this.#verified.set(token, claims);
    return claims;
  }

  #verifySignature(token: string): Claims {
    const dot = token.indexOf(".");
    if (dot <= 0 || dot !== token.lastIndexOf(".")) throw new UnauthorizedError("malformed token");
    const body = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), "base64url");
    const expected = this.#mac(body);
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
      throw new UnauthorizedError("token signature does not match");
    }
    let w: WireClaims;
    try {
      w = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as WireClaims;
    } catch {
      throw new UnauthorizedError("malformed token claims");
    }
    if (typeof w.e !== "number" || w.e <= this.clock.now()) throw new UnauthorizedError("token expired");
    if (w.k === "cluster") return { kind: "cluster", expiresAtMs: w.e };
    if (w.k === "job" && typeof w.j === "string" && typeof w.s === "string") {
      return { kind: "job", jobId: w.j, shardId: w.s, expiresAtMs: w.e };
    }
    throw new UnauthorizedError("malformed token claims");
  }

  #sign(claims: WireClaims): string {
    const body = Buffer.from(JSON.stringify(claims), "utf8").toString("base64url");
    return `${body}.${this.#mac(body).toString("base64url")}`;
  }

  #mac(body: string): Buffer {
    return createHmac("sha256", this.#key).update(body).digest();
  }
}

/** Reads a token's claims without checking them (clients use it to find their shard). */
export function peekJobClaims(token: string): { jobId: string; shardId: string; expiresAtMs: number } {
  const dot = token.indexOf(".");
  try {
    const w = JSON.parse(Buffer.from(token.slice(0, dot), "base64url").toString("utf8")) as WireClaims;
    if (w.k === "job" && typeof w.j === "string" && typeof w.s === "string" && typeof w.e === "number") {
      return { jobId: w.j, shardId: w.s, expiresAtMs: w.e };
    }
  } catch {
    // fall through to the typed error
  }
  throw new UnauthorizedError("not a job token");
}
