import { EventStream } from "./events";
import { fromSeed, mintUserCreds, type KeyPair, type UserPermissions } from "./nats-jwt";
import { Inboxes, Subjects, SubjectRoot, checkSubjectToken } from "./subjects";

/**
 * Who may say what on the bus. Every identity is a NATS user whose JWT lists
 * the subjects it may publish and subscribe to; nats-server enforces them, so
 * a handler that receives a message on a subject knows which role sent it:
 *
 * | role       | publishes                                              | receives                                  |
 * |------------|--------------------------------------------------------|-------------------------------------------|
 * | controller | decisions, events, cluster operations on shards/nodes  | its operations, heartbeats, usage reports |
 * | shard      | its own heartbeat and usage; frees and copies on nodes | its own operations, node heartbeats       |
 * | node       | its own heartbeat                                      | its own operations                        |
 * | operator   | controller operations; JetStream reads of events       | events, heartbeats, its replies           |
 * | driver     | register / renew / deregister                          | its replies                               |
 * | lambda     | its one job's operations on its shard and on nodes     | its replies                               |
 *
 * Replies: a responder may publish only to the reply subject of a request it
 * received (`resp`), and each identity subscribes only under its own inbox
 * prefix (`Inboxes`), so no one reads another's replies or forges them.
 */
export const Role = {
  Controller: "controller",
  Shard: "shard",
  Node: "node",
  Operator: "operator",
  Driver: "driver",
  Lambda: "lambda",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/**
 * A responder may answer each request once, within this long of receiving it
 * (nats-server forgets the permission after). Shards answer the controller's
 * `shard.migrate`, which may run for minutes (up to its 10-minute deadline).
 */
const respond = { max: 1, ttlMs: 2 * 60_000 } as const;
const respondSlowly = { max: 1, ttlMs: 15 * 60_000 } as const;
const js = "$JS.API";

export function controllerPermissions(): UserPermissions {
  return {
    pub: [
      `${SubjectRoot}.shard.*.ctl.>`, `${SubjectRoot}.node.*.ctl.>`,
      `${SubjectRoot}.evt.>`, `${SubjectRoot}.trace.>`, `${js}.>`,
    ],
    sub: [Subjects.controllerAll, `${SubjectRoot}.hb.>`, `${SubjectRoot}.usage.>`, `${Inboxes.controller}.>`],
    responses: respond,
  };
}

export function shardPermissions(shardId: string): UserPermissions {
  checkSubjectToken("shard", shardId);
  return {
    pub: [
      Subjects.shardHeartbeat(shardId), Subjects.shardUsage(shardId),
      `${SubjectRoot}.node.*.ctl.extent.free`,
      // Moving extents off a draining node: node to node (extent.copy) where both have a direct transport,
      // else reads and writes as the job, with grants it signs.
      `${SubjectRoot}.node.*.ctl.extent.copy`,
      `${SubjectRoot}.node.*.job.*.extent.read`, `${SubjectRoot}.node.*.job.*.extent.write`,
    ],
    sub: [`${Subjects.shard(shardId)}.>`, Subjects.nodeHeartbeatAll, `${Inboxes.shard(shardId)}.>`],
    responses: respondSlowly,
  };
}

export function nodePermissions(nodeId: string): UserPermissions {
  checkSubjectToken("node", nodeId);
  return {
    pub: [Subjects.nodeHeartbeat(nodeId)],
    sub: [`${Subjects.node(nodeId)}.>`, `${Inboxes.node(nodeId)}.>`],
    responses: respond,
  };
}

export function operatorPermissions(name: string): UserPermissions {
  checkSubjectToken("operator", name);
  const stream = EventStream.name;
  return {
    pub: [
      `${Subjects.controllerAll}`,
      `${js}.INFO`, `${js}.STREAM.INFO.${stream}`, `${js}.STREAM.MSG.GET.${stream}`,
      `${js}.CONSUMER.CREATE.${stream}`, `${js}.CONSUMER.CREATE.${stream}.>`, `${js}.CONSUMER.DURABLE.CREATE.${stream}.>`,
      `${js}.CONSUMER.INFO.${stream}.>`, `${js}.CONSUMER.DELETE.${stream}.>`, `${js}.CONSUMER.MSG.NEXT.${stream}.>`,
      `$JS.ACK.${stream}.>`, `$JS.FC.${stream}.>`,
    ],
    sub: [`${Inboxes.operator(name)}.>`, `${SubjectRoot}.evt.>`, `${SubjectRoot}.hb.>`],
  };
}

export function driverPermissions(name: string): UserPermissions {
  checkSubjectToken("driver", name);
  return { pub: [`${Subjects.controllerDriver}.>`], sub: [`${Inboxes.driver(name)}.>`] };
}

/** A lambda reaches only its own job: its shard's job subjects and the job's extents on any node. */
export function lambdaPermissions(jobId: string, shardId: string): UserPermissions {
  checkSubjectToken("job", jobId);
  checkSubjectToken("shard", shardId);
  return {
    pub: [`${Subjects.shardJob(shardId, jobId)}.>`, `${SubjectRoot}.node.*.job.${jobId}.>`],
    sub: [`${Inboxes.job(jobId)}.>`],
  };
}

/** The inbox prefix a connection of this identity must use (its credential allows no other). */
export function inboxFor(role: Role, id: string): string {
  switch (role) {
    case Role.Controller: return Inboxes.controller;
    case Role.Shard: return Inboxes.shard(id);
    case Role.Node: return Inboxes.node(id);
    case Role.Operator: return Inboxes.operator(id);
    case Role.Driver: return Inboxes.driver(id);
    case Role.Lambda: return Inboxes.job(id);
  }
}

/**
 * Mints NATS credentials (creds file text) for each role, signed by one of the
 * account's signing keys. The controller holds one to hand each registered
 * job a lambda credential and each node it launches its own.
 *
 * @example
 *   const issuer = CredentialIssuer.fromSeed(accountPublicKey, signingSeed);
 *   const creds = issuer.lambda("j-1", "s0", expiresAtMs);
 */
export class CredentialIssuer {
  constructor(readonly account: string, private readonly signer: KeyPair) {}

  static fromSeed(account: string, seed: string): CredentialIssuer {
    return new CredentialIssuer(account, fromSeed(Buffer.from(seed.trim(), "utf8")));
  }

  controller(): string { return this.#mint("controller", controllerPermissions()); }
  shard(shardId: string): string { return this.#mint(`shard-${shardId}`, shardPermissions(shardId)); }
  node(nodeId: string): string { return this.#mint(`node-${nodeId}`, nodePermissions(nodeId)); }
  operator(name: string): string { return this.#mint(`operator-${name}`, operatorPermissions(name)); }
  driver(name: string): string { return this.#mint(`driver-${name}`, driverPermissions(name)); }
  lambda(jobId: string, shardId: string, expiresAtMs: number): string {
    return this.#mint(`lambda-${jobId}`, lambdaPermissions(jobId, shardId), expiresAtMs);
  }

  #mint(name: string, permissions: UserPermissions, expiresAtMs?: number): string {
    return mintUserCreds(this.signer, this.account, name, permissions, expiresAtMs);
  }
}
