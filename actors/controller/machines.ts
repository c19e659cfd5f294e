import { assign, initialTransition, setup, transition, type SnapshotFrom } from "xstate";

/**
 * Lifecycle machines for storage nodes and jobs. They are pure: time comes
 * in with every event (`atMs`), timeouts are guards on `tick` events, and the
 * controller core reads state changes off the snapshots and turns them into
 * decisions that the actor shell carries out.
 */

export interface NodeTimeouts {
  /** A node not heard for this long is failed. */
  readonly silenceMs: number;
  /** A launched node not heard within this long is failed. */
  readonly launchTimeoutMs: number;
}

export interface NodeLifeContext extends NodeTimeouts {
  lastSeenMs: number;
  stateSinceMs: number;
  /** When a draining node's live extents are moved elsewhere instead of waiting for them to go. */
  drainDeadlineMs: number;
}

export type NodeLifeEvent =
  | { type: "heartbeat"; atMs: number }
  | { type: "tick"; atMs: number }
  | { type: "drain"; atMs: number; deadlineMs: number }
  /** The node holds no live data (any more). */
  | { type: "empty"; atMs: number }
  /** Given up on (a failed node that is not coming back, or an operator's removal). */
  | { type: "remove"; atMs: number };

export const NodeState = {
  Provisioning: "provisioning",
  Active: "active",
  Draining: "draining",
  Removed: "removed",
  Failed: "failed",
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

export const nodeMachine = setup({
  types: {
    context: {} as NodeLifeContext,
    events: {} as NodeLifeEvent,
    input: {} as NodeTimeouts & { atMs: number; state?: NodeState },
  },
  actions: {
    seen: assign({ lastSeenMs: ({ event }) => event.atMs }),
    since: assign({ stateSinceMs: ({ event }) => event.atMs }),
    setDeadline: assign({ drainDeadlineMs: ({ event }) => (event.type === "drain" ? event.deadlineMs : Number.MAX_SAFE_INTEGER) }),
  },
  guards: {
    silent: ({ context, event }) => event.atMs - context.lastSeenMs > context.silenceMs,
    launchTimedOut: ({ context, event }) => event.atMs - context.stateSinceMs > context.launchTimeoutMs,
  },
}).createMachine({
  id: "storage-node",
  initial: "provisioning",
  // `transition()` builds a throwaway initial state without input on every step: no input must not throw.
  context: ({ input }) => ({
    silenceMs: input?.silenceMs ?? 0, launchTimeoutMs: input?.launchTimeoutMs ?? 0,
    lastSeenMs: input?.atMs ?? 0, stateSinceMs: input?.atMs ?? 0, drainDeadlineMs: Number.MAX_SAFE_INTEGER,
  }),
  states: {
    provisioning: {
      on: {
        heartbeat: { target: "active", actions: ["seen", "since"] },
        tick: { guard: "launchTimedOut", target: "failed", actions: "since" },
        remove: { target: "removed", actions: "since" },
      },
    },
    active: {
      on: {
        heartbeat: { actions: "seen" },
        tick: { guard: "silent", target: "failed", actions: "since" },
        drain: { target: "draining", actions: ["since", "setDeadline"] },
      },
    },
    draining: {
      on: {
        heartbeat: { actions: "seen" },
        tick: { guard: "silent", target: "failed", actions: "since" },
        empty: { target: "removed", actions: "since" },
        remove: { target: "removed", actions: "since" },
      },
    },
    failed: {
      on: {
        // A node that comes back after being declared failed serves again (its old extents may be gone).
        heartbeat: { target: "active", actions: ["seen", "since"] },
        remove: { target: "removed", actions: "since" },
      },
    },
    removed: { type: "final" },
  },
});

export type NodeSnapshot = SnapshotFrom<typeof nodeMachine>;

export function newNodeLife(timeouts: NodeTimeouts, atMs: number): NodeSnapshot {
  return initialTransition(nodeMachine, { ...timeouts, atMs })[0];
}

/** A node's snapshot from stored fields (after a controller restart). */
export function restoreNodeLife(state: NodeState, context: NodeLifeContext): NodeSnapshot {
  return nodeMachine.resolveState({ value: state, context });
}

export function stepNode(snapshot: NodeSnapshot, event: NodeLifeEvent): NodeSnapshot {
  return transition(nodeMachine, snapshot, event)[0];
}

export function nodeStateOf(snapshot: NodeSnapshot): NodeState {
  return snapshot.value as NodeState;
}

// ---------------------------------------------------------------- jobs

export interface JobLifeContext {
  leaseMs: number;
  leaseExpiresAtMs: number;
  stateSinceMs: number;
}

export type JobLifeEvent =
  | { type: "renew"; atMs: number }
  /** The job's lambdas are using it (requests seen by its shard). */
  | { type: "used"; atMs: number }
  | { type: "deregister"; atMs: number }
  | { type: "tick"; atMs: number };

export const JobState = {
  Registered: "registered",
  Active: "active",
  Ended: "ended",
  Expired: "expired",
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];

export const jobMachine = setup({
  types: {
    context: {} as JobLifeContext,
    events: {} as JobLifeEvent,
    input: {} as { atMs: number; leaseMs: number },
  },
  actions: {
    renewLease: assign({ leaseExpiresAtMs: ({ context, event }) => event.atMs + context.leaseMs }),
    jobSince: assign({ stateSinceMs: ({ event }) => event.atMs }),
  },
  guards: {
    leaseRunOut: ({ context, event }) => event.atMs >= context.leaseExpiresAtMs,
  },
}).createMachine({
  id: "job",
  initial: "registered",
  context: ({ input }) => ({ leaseMs: input?.leaseMs ?? 0, leaseExpiresAtMs: (input?.atMs ?? 0) + (input?.leaseMs ?? 0), stateSinceMs: input?.atMs ?? 0 }),
  states: {
    registered: {
      on: {
        renew: { actions: "renewLease" },
        used: { target: "active", actions: ["renewLease", "jobSince"] },
        deregister: { target: "ended", actions: "jobSince" },
        tick: { guard: "leaseRunOut", target: "expired", actions: "jobSince" },
      },
    },
    active: {
      on: {
        renew: { actions: "renewLease" },
        used: { actions: "renewLease" },
        deregister: { target: "ended", actions: "jobSince" },
        tick: { guard: "leaseRunOut", target: "expired", actions: "jobSince" },
      },
    },
    ended: { type: "final" },
    expired: { type: "final" },
  },
});

export type JobSnapshot = SnapshotFrom<typeof jobMachine>;

export function newJobLife(atMs: number, leaseMs: number): JobSnapshot {
  return initialTransition(jobMachine, { atMs, leaseMs })[0];
}

export function restoreJobLife(state: JobState, context: JobLifeContext): JobSnapshot {
  return jobMachine.resolveState({ value: state, context });
}

export function stepJob(snapshot: JobSnapshot, event: JobLifeEvent): JobSnapshot {
  return transition(jobMachine, snapshot, event)[0];
}

export function jobStateOf(snapshot: JobSnapshot): JobState {
  return snapshot.value as JobState;
}
