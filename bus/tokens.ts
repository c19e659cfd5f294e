import { createHmac, timingSafeEqual } from "node:crypto";
import { InvalidArgumentError, UnauthorizedError } from "../schemas/errors";
import type { Clock } from "../lib/clock";

/** What a job capability token grants: one job's namespace, on one shard, until `expiresAtMs`. */
export interface JobClaims {
  readonly kind: "job";
  readonly jobId: string;
  readonly shardId: string;
  readonly expiresAtMs: number;
}

/*
 * There is no cluster token: operations between components are authorised by
 * the caller's identity on the bus (subjects only components may publish to),
 * so no cluster-wide bearer secret ever travels.
 */
export type Claims = JobClaims;

interface WireClaims { k: "job"; j?: string; s?: string; e: number }

/** What a write grant allows: one write of exactly `length` bytes to one extent id on one node, for one job. */
export interface GrantClaims {
  readonly jobId: string;
  readonly nodeId: string;
  readonly extentId: string;
  readonly length: number;
}

/** What a storage node attests it stored: the extent's bytes, their length and their CRC-32. */
export interface ReceiptClaims extends GrantClaims {
  readonly crc: number;
}

/** MACs of grants and receipts are HMAC-SHA256 truncated to this many bytes. */
const tagBytes = 16;
/** Domain separation: a grant's MAC never verifies as a receipt's, nor the reverse. */
const GrantDomain = "pocket/extent-grant/v1";
const ReceiptDomain = "pocket/extent-receipt/v1";
const grantPattern = /^([0-9a-z]{1,11})\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})$/;

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

  /** Checks a job token; with `jobId`, also that it is that job's. */
  verifyJob(token: string | undefined, jobId?: string): JobClaims {
    const c = this.verify(token);
    if (c.kind !== "job") throw new UnauthorizedError("a job token is required");
    if (jobId !== undefined && c.jobId !== jobId) throw new UnauthorizedError("the token is for another job");
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
    const given = canonicalBase64url(token.slice(dot + 1));
    const expected = this.#mac(body);
    if (!given || given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
      throw new UnauthorizedError("token signature does not match");
    }
    let w: WireClaims;
    try {
      w = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as WireClaims;
    } catch {
      throw new UnauthorizedError("malformed token claims");
    }
    if (typeof w.e !== "number" || w.e <= this.clock.now()) throw new UnauthorizedError("token expired");
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

  /**
   * A shard's permission to write one extent: `base36(length) "." base36(expiresAtMs) "." base64url(MAC)`,
   * the MAC binding job, node, extent id, length and expiry. About 40 characters.
   *
   * @example
   *   const grant = t.issueGrant({ jobId: "j-1", nodeId: "dram-0", extentId: "x.1", length: 1024 }, 120_000);
   *   t.verifyGrant(grant, { jobId: "j-1", nodeId: "dram-0", extentId: "x.1", length: 1024 });
   */
  issueGrant(claims: GrantClaims, ttlMs: number): string {
    checkLength(claims.length);
    // Whole milliseconds: the grant spells its expiry in base 36 digits, and a clock may read fractions.
    const expiresAtMs = Math.floor(this.clock.now() + Math.max(0, ttlMs));
    const tag = this.#tag([GrantDomain, claims.jobId, claims.nodeId, claims.extentId, claims.length, expiresAtMs]);
    return `${claims.length.toString(36)}.${expiresAtMs.toString(36)}.${tag.toString("base64url")}`;
  }

  /**
   * Checks that `grant` allows exactly this write. Unauthorized when it is
   * missing, forged, expired, or for another job, node or extent id;
   * InvalidArgument when it is genuine but for another length.
   */
  verifyGrant(grant: string | undefined, expected: GrantClaims): { readonly expiresAtMs: number } {
    if (grant === undefined || grant === "") throw new UnauthorizedError(`a write of extent ${expected.extentId} needs a grant from the job's shard`);
    const m = grantPattern.exec(grant);
    if (!m) throw new UnauthorizedError("malformed grant");
    const granted = parseInt(m[1]!, 36);
    const expiresAtMs = parseInt(m[2]!, 36);
    // One spelling per grant: no leading zeros, no alternative base64url forms of the tag.
    if (granted.toString(36) !== m[1] || expiresAtMs.toString(36) !== m[2]) throw new UnauthorizedError("malformed grant");
    const tag = this.#tag([GrantDomain, expected.jobId, expected.nodeId, expected.extentId, granted, expiresAtMs]);
    const given = canonicalBase64url(m[3]!);
    if (!given || !sameTag(given, tag)) {
      throw new UnauthorizedError(`the grant is not for extent ${expected.extentId} of job ${expected.jobId} on node ${expected.nodeId}, or is forged`);
    }
    if (expiresAtMs <= this.clock.now()) throw new UnauthorizedError(`the grant for extent ${expected.extentId} expired`);
    if (granted !== expected.length) {
      throw new InvalidArgumentError(`the grant for extent ${expected.extentId} is for ${granted} bytes; the payload has ${expected.length}`);
    }
    return { expiresAtMs };
  }

  /** What a node gives back for a write it stored: `base64url(MAC)` over job, node, extent id, length and crc (22 characters). */
  issueReceipt(claims: ReceiptClaims): string {
    checkLength(claims.length);
    return this.#receiptTag(claims).toString("base64url");
  }

  /** Checks that a node stored exactly this extent (length and crc); Unauthorized otherwise. */
  verifyReceipt(receipt: string | undefined, expected: ReceiptClaims): void {
    const given = canonicalBase64url(receipt ?? "");
    if (!given || !sameTag(given, this.#receiptTag(expected))) {
      throw new UnauthorizedError(
        `the receipt for extent ${expected.extentId} does not match a write of ${expected.length} bytes with crc ${expected.crc} on node ${expected.nodeId}, or is forged`,
      );
    }
  }

  #receiptTag(c: ReceiptClaims): Buffer {
    return this.#tag([ReceiptDomain, c.jobId, c.nodeId, c.extentId, c.length, c.crc]);
  }

  /** Truncated HMAC over a JSON array: fields cannot run into each other, whatever characters they hold. */
  #tag(fields: ReadonlyArray<string | number>): Buffer {
    return createHmac("sha256", this.#key).update(JSON.stringify(fields)).digest().subarray(0, tagBytes);
  }
}

function sameTag(given: Buffer, expected: Buffer): boolean {
  return given.byteLength === expected.byteLength && timingSafeEqual(given, expected);
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError(`bad extent length ${length}`);
}

/**
 * Decodes base64url only in its one canonical spelling (Node's decoder skips
 * stray characters and ignores unused bits): a signature has one form, so a
 * valid token cannot be respelled into many cache entries.
 */
function canonicalBase64url(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}

/**
 * A router check for requests the bus addressed to one job: the request's
 * token (checked in full by the handler) must be that job's.
 */
export function tokenScope(tokens: TokenAuthority): (request: unknown, jobId: string) => void {
  return (request, jobId) => {
    const token = (request as { token?: unknown }).token;
    if (typeof token !== "string") return; // operations without a job token (info, stats)
    tokens.verifyJob(token, jobId);
  };
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
