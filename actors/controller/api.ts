import { CapacityExceededError, InvalidArgumentError, NotFoundError, UnknownJobError } from "../../schemas/errors";
import { ControllerOps, ShardOps } from "../../schemas/operations";
import type { RequestOf } from "../../schemas/operation";
import type { Clock } from "../../lib/clock";
import type { Entropy } from "../../lib/entropy";
import type { CredentialIssuer } from "../../bus/credentials";
import { Router } from "../../bus/router";
import type { TokenAuthority } from "../../bus/tokens";
import type { ControllerCore, JobBook } from "./core";
import type { Effects } from "./effects";
import type { ControllerInput } from "./inputs";
import { NodeState } from "./machines";
import type { ControllerStore } from "./store";
import { nodeInfos, usageReport } from "./usage-report";

/** Shards as the controller knows them from their heartbeats. */
export interface ShardView {
  /** The live shard with the fewest live jobs; NodeUnavailable when none is live. */
  pick(): string;
  list(): Array<{ shardId: string; state: "active" | "failed"; jobs: number; objects: number; lastSeenMs: number }>;
}

/** What the controller's API needs of its shell. */
export interface ApiContext {
  readonly core: ControllerCore;
  readonly store: ControllerStore;
  readonly clock: Clock;
  readonly entropy: Entropy;
  readonly tokens: TokenAuthority;
  readonly effects: Effects;
  readonly shards: ShardView;
  /** Mints lambda credentials; undefined on a bus without authentication. */
  readonly issuer: CredentialIssuer | undefined;
  readonly jobsMax: number;
  readonly jobTokenTtlMs: number;
  input(input: ControllerInput): void;
  /** Resolves once every change so far is stored. */
  flush(): Promise<void>;
}

/** What job drivers may call (on `pocket.ctl.driver.*`): register, renew, deregister. */
export function driverRouter(c: ApiContext): Router {
  return new Router()
    .on(ControllerOps.jobRegister, (req) => register(c, req))
    .on(ControllerOps.jobRenew, (req) => {
      const j = liveJob(c, c.tokens.verifyJob(req.token).jobId);
      c.input({ kind: "job.renew", atMs: c.clock.now(), jobId: j.jobId });
      return { jobId: j.jobId, leaseExpiresAtMs: j.life.context.leaseExpiresAtMs };
    })
    .on(ControllerOps.jobDeregister, async (req) => {
      const j = liveJob(c, c.tokens.verifyJob(req.token).jobId);
      // The shard that does not answer in time keeps the job registered: the caller retries rather than leak it.
      const freedBytes = await c.effects.reclaim(j.jobId, j.shardId);
      c.input({ kind: "job.deregister", atMs: c.clock.now(), jobId: j.jobId });
      await c.flush();
      return { jobId: j.jobId, freedBytes };
    });
}

/**
 * Registers a job: the core allocates it, its shard attaches it with its
 * weight map, and the driver gets its token (and lambda credential). A shard
 * that does not attach it undoes the registration.
 */
async function register(c: ApiContext, req: RequestOf<typeof ControllerOps.jobRegister>) {
  if (c.core.liveJobs().length >= c.jobsMax) throw new CapacityExceededError(`${c.jobsMax} jobs are registered; deregister some first`);
  const shardId = c.shards.pick();
  const jobId = `j-${c.entropy.bytes(8).toString("hex")}`;
  const now = c.clock.now();
  c.input({ kind: "job.register", atMs: now, jobId, name: req.name, shardId, hints: req.hints ?? {}, ...(req.leaseMs ? { leaseMs: req.leaseMs } : {}) });
  const job = c.core.job(jobId)!;
  try {
    const sent = job.weights;
    await c.effects.shard(shardId).call(ShardOps.attachJob, { jobId, name: req.name, weights: sent });
    // Weights that changed while the shard was attaching (a node came up) go out now.
    if (job.weights !== sent) await c.effects.shard(shardId).call(ShardOps.setWeights, { jobId, weights: job.weights });
    await c.flush();
  } catch (e) {
    c.input({ kind: "job.deregister", atMs: c.clock.now(), jobId });
    throw e;
  }
  const ttl = c.jobTokenTtlMs;
  return {
    jobId, token: c.tokens.issueJob(jobId, shardId, ttl), shardId, expiresAtMs: now + ttl,
    leaseExpiresAtMs: job.life.context.leaseExpiresAtMs, leaseMs: job.life.context.leaseMs, tier: job.tier, weights: job.weights,
    ...(c.issuer ? { credentials: c.issuer.lambda(jobId, shardId, now + ttl) } : {}),
  };
}

/** What operators may call (on `pocket.ctl.admin.*`): lists, usage, the scaling band, retiring nodes. */
export function adminRouter(c: ApiContext): Router {
  const core = c.core;
  return new Router()
    .on(ControllerOps.jobList, () => ({
      jobs: core.liveJobs().map((j) => ({
        jobId: j.jobId, name: j.name, shardId: j.shardId, registeredAtMs: j.registeredAtMs, hints: j.hints, weights: j.weights,
        state: core.jobState(j), tier: j.tier, leaseExpiresAtMs: j.life.context.leaseExpiresAtMs,
      })),
    }))
    .on(ControllerOps.jobUsage, async (req) => {
      const j = core.job(req.jobId) ?? (await c.store.job(req.jobId));
      if (!j) throw new UnknownJobError(`job ${req.jobId} is not known`);
      return usageReport(j, core.jobState(j), core.policy);
    })
    .on(ControllerOps.nodeList, () => ({ nodes: nodeInfos(core) }))
    .on(ControllerOps.nodeRetire, (req) => {
      const n = core.node(req.nodeId);
      if (!n || core.nodeState(n) === NodeState.Removed) throw new NotFoundError(`node ${req.nodeId} is not known`);
      const state = core.nodeState(n);
      if (state !== NodeState.Active && state !== NodeState.Draining) throw new InvalidArgumentError(`node ${req.nodeId} is ${state}; only an active node can be retired`);
      c.input({ kind: "node.retire", atMs: c.clock.now(), nodeId: req.nodeId });
      return { nodeId: req.nodeId, state: core.nodeState(n) };
    })
    .on(ControllerOps.shardList, () => ({ shards: c.shards.list() }))
    .on(ControllerOps.scalingStatus, () => scalingStatus(c));
}

/** The band and each tier's utilisation as the autoscaler sees them now (what `pocket dashboard` charts). */
function scalingStatus(c: ApiContext) {
  const p = c.core.policy;
  return {
    atMs: c.clock.now(), scaling: p.scaling, bandLow: p.bandLow, bandHigh: p.bandHigh,
    windowMs: p.windowMs, sustainMs: p.sustainMs, cooldownMs: p.cooldownMs,
    tiers: p.nodeTypes.map((t) => ({ tier: t.tier, minNodes: t.minNodes, maxNodes: t.maxNodes, measurements: c.core.measurements(t.tier) })),
  };
}

function liveJob(c: ApiContext, jobId: string): JobBook {
  const j = c.core.job(jobId);
  if (!j || !c.core.isLive(j)) throw new UnknownJobError(`job ${jobId} is not registered`);
  return j;
}
