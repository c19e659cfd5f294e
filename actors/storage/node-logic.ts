import { AlreadyExistsError, IntegrityError, InvalidArgumentError, TooLargeError, UnknownJobError } from "../../schemas/errors";
import { heartbeatJobIdsMax, NodeOps, type NodeHeartbeat } from "../../schemas/operations";
import type { ReplyOf, RequestOf } from "../../schemas/operation";
import { assert } from "../../lib/assert";
import { BoundedSet } from "../../lib/bounded-set";
import { crc32 } from "../../lib/checksum";
import type { Clock } from "../../lib/clock";
import { WithPayload } from "../../bus/router";
import type { TokenAuthority } from "../../bus/tokens";
import { Defaults } from "../runtime/config";
import type { ExtentStore } from "./extent-store";

type Req<K extends keyof typeof NodeOps> = RequestOf<(typeof NodeOps)[K]>;
type Rep<K extends keyof typeof NodeOps> = ReplyOf<(typeof NodeOps)[K]>;

/** What the shell measures between heartbeats (CPU and network), for the logic to report. */
export interface NodeLoad {
  readonly cpu: number;
  readonly bytesInPerSec: number;
  readonly bytesOutPerSec: number;
}

/**
 * A storage node's logic: which writes it accepts (only inside a shard's
 * grant, with bytes matching the writer's crc, never to a freed extent or
 * for a dropped job), the receipts it gives, ranges with the crcs to check
 * them, frees and drops. Its bytes live in the tier's ExtentStore; it does
 * no bus or timer I/O of its own.
 */
export class NodeLogic {
  readonly #droppedJobs = new BoundedSet<string>(Defaults.droppedJobsRemembered);
  /**
   * Extents freed while a grant for them may still be valid (`job/extent` →
   * when their grants have all expired), so a grant cannot write a freed extent
   * again outside the shard's accounting. Insertion order is time order.
   */
  readonly #freed = new Map<string, number>();

  constructor(
    readonly nodeId: string,
    readonly store: ExtentStore,
    private readonly tokens: TokenAuthority,
    private readonly clock: Clock,
    readonly extentBytesMax: number = Defaults.extentBytesMax,
  ) {}

  /**
   * Stores an extent only inside a shard's grant (this job, this node, this
   * extent id, exactly this many bytes) and only if the bytes match the
   * sender's crc; answers with a receipt the shard requires at commit.
   * Bounds first, then the grant, then the bytes: nothing is stored on any failure.
   */
  async write(req: Req<"extentWrite">, bytes: Uint8Array, owned = false): Promise<Rep<"extentWrite">> {
    const { jobId } = this.tokens.verifyJob(req.token);
    if (this.#droppedJobs.has(jobId)) throw new UnknownJobError(`job ${jobId} has been deregistered`);
    if (this.#freed.has(`${jobId}/${req.extentId}`)) throw new AlreadyExistsError(`extent ${req.extentId} was written and freed; extents are never reused`);
    if (bytes.byteLength > this.extentBytesMax) throw new TooLargeError(`extent of ${bytes.byteLength} bytes exceeds ${this.extentBytesMax}`);
    if (bytes.byteLength === 0) throw new InvalidArgumentError("an extent holds at least one byte");
    const claims = { jobId, nodeId: this.nodeId, extentId: req.extentId, length: bytes.byteLength };
    this.tokens.verifyGrant(req.grant, claims);
    if (req.crc === undefined) throw new InvalidArgumentError(`extent.write of ${req.extentId} carries no crc of its payload`);
    const crc = crc32(bytes);
    if (crc !== req.crc) {
      throw new IntegrityError(`extent ${req.extentId}: the ${bytes.byteLength} bytes received have crc ${crc}, the sender's is ${req.crc}; nothing stored`);
    }
    await this.store.write(jobId, req.extentId, bytes, owned);
    this.#checkStore();
    return { length: bytes.byteLength, crc, receipt: this.tokens.issueReceipt({ ...claims, crc }) };
  }

  /**
   * Reads an extent, or a range with the CRC-32 of the extent's bytes before
   * and after it, so the reader checks the range against the committed
   * whole-extent crc. A range costs a read of the whole extent: nothing more
   * on DRAM (the bytes are in memory), but on NVMe every block of the extent
   * is fetched, not only those under the range (read amplification of up to
   * extent size / range length; whole-extent reads, the common case, cost
   * nothing extra).
   */
  async read(req: Req<"extentRead">): Promise<WithPayload<Rep<"extentRead">>> {
    const { jobId } = this.tokens.verifyJob(req.token);
    const { extentId } = req;
    const offset = req.offset ?? 0;
    const { bytes: all, release } = await this.store.read(jobId, extentId, 0, undefined);
    if (offset === 0 && req.length === undefined) return new WithPayload({ length: all.byteLength, prefixCrc: 0, suffixCrc: 0 }, all, release);
    const end = req.length === undefined ? all.byteLength : offset + req.length;
    if (offset > all.byteLength || end > all.byteLength) {
      release?.();
      throw new InvalidArgumentError(`range [${offset}, ${end}) is outside extent ${extentId} of ${all.byteLength} bytes`);
    }
    const bytes = all.subarray(offset, end);
    return new WithPayload({ length: bytes.byteLength, prefixCrc: crc32(all.subarray(0, offset)), suffixCrc: crc32(all.subarray(end)) }, bytes, release);
  }

  /**
   * The bytes of an extent to send to another node (extent.copy), checked
   * against its committed crc first: bytes that do not match stay here
   * (Integrity), so a damaged extent is never copied into one that looks
   * sound. A copy of its own: the extent's memory is released at once, and
   * nothing the send may leave queued on a socket can outlive it. The job
   * token to send with must be the job's (Unauthorized otherwise).
   */
  async copySource(req: Req<"extentCopy">): Promise<Buffer> {
    // The token is the destination's to check; a node does not send with one it can see is bad (another job's, expired).
    this.tokens.verifyJob(req.token, req.jobId);
    const { bytes, release } = await this.store.read(req.jobId, req.extentId, 0, undefined);
    try {
      const crc = crc32(bytes);
      if (crc !== req.crc) throw new IntegrityError(`extent ${req.extentId}: its ${bytes.byteLength} bytes have crc ${crc}, committed ${req.crc}; not copied`);
      return Buffer.from(bytes);
    } finally {
      release?.();
    }
  }

  /** Frees extents, and refuses writes to them while a grant for them may live. */
  async free(req: Req<"extentFree">): Promise<Rep<"extentFree">> {
    this.#rememberFreed(req.jobId, req.extentIds);
    const freedBytes = await this.store.free(req.jobId, req.extentIds);
    this.#checkStore();
    return { freedBytes };
  }

  /** Drops everything of a deregistered job, and refuses its late writes. */
  async dropJob(req: Req<"jobDrop">): Promise<Rep<"jobDrop">> {
    this.#droppedJobs.add(req.jobId);
    const freedBytes = await this.store.dropJob(req.jobId);
    this.#checkStore();
    return { freedBytes };
  }

  stats(extra: Partial<Rep<"stats">> = {}): Rep<"stats"> {
    const s = this.store;
    return { nodeId: this.nodeId, tier: s.tier, capacityBytes: s.capacityBytes, usedBytes: s.usedBytes, extents: s.extentCount, jobs: s.jobCount, ...extra };
  }

  heartbeat(addr: string, key: string, load: NodeLoad): NodeHeartbeat {
    const s = this.store;
    return {
      nodeId: this.nodeId, tier: s.tier, addr, key, capacityBytes: s.capacityBytes, usedBytes: s.usedBytes, extents: s.extentCount,
      ...load, jobIds: this.#nextJobIds(), sentAtMs: this.clock.now(),
    };
  }

  /**
   * The next window of job ids to name in a heartbeat: every job is named
   * within jobCount / heartbeatJobIdsMax heartbeats. A live iterator over the
   * store's jobs carries the place from one heartbeat to the next (a job
   * dropped meanwhile is skipped), so a heartbeat costs the window, not a
   * pass over every job.
   */
  #nextJobIds(): string[] {
    if (this.store.jobCount <= heartbeatJobIdsMax) {
      this.#jobCursor = undefined;
      return [...this.store.jobIds()];
    }
    const out: string[] = [];
    for (let restarted = false; out.length < heartbeatJobIdsMax;) {
      this.#jobCursor ??= this.store.jobIds();
      const next = this.#jobCursor.next();
      if (!next.done) {
        out.push(next.value);
        continue;
      }
      // The end of the jobs: this window stops there, and the next starts from the beginning.
      this.#jobCursor = undefined;
      if (out.length > 0 || restarted) break;
      restarted = true;
    }
    return out;
  }

  #jobCursor: Iterator<string> | undefined;

  /** Extents remembered as freed (bounded by Defaults.freedExtentsRemembered). */
  get freedRemembered(): number {
    return this.#freed.size;
  }

  #rememberFreed(jobId: string, extentIds: readonly string[]): void {
    const now = this.clock.now();
    for (const [key, until] of this.#freed) {
      if (until > now && this.#freed.size < Defaults.freedExtentsRemembered) break;
      this.#freed.delete(key);
    }
    // A grant lives as long as the write it was made for.
    const until = now + Defaults.pendingWriteTtlMs;
    for (const id of extentIds) this.#freed.set(`${jobId}/${id}`, until);
  }

  #checkStore(): void {
    const s = this.store;
    assert(s.usedBytes >= 0 && s.usedBytes <= s.capacityBytes && s.extentCount >= 0, "node's accounting out of bounds", () => ({
      nodeId: this.nodeId, usedBytes: s.usedBytes, capacityBytes: s.capacityBytes, extents: s.extentCount,
    }));
  }
}
