import type { Tier } from "../../schemas/operations";
import type { ServerTlsFiles } from "../../bus/tls";

/** What an orchestrator needs to start one storage node. */
export interface NodeLaunchSpec {
  readonly nodeId: string;
  readonly tier: Tier;
  readonly capacityBytes: number;
}

/** Cluster settings every launched node gets. */
export interface LaunchContext {
  readonly natsUrl: string;
  readonly secret: string;
  /** Mints a launched node's own NATS credential (creds text); absent on a bus without authentication. */
  readonly nodeCredentials?: (nodeId: string) => string;
  /** The cluster's CA file: a launched node reaches NATS over TLS, verifying the server with it. */
  readonly natsTlsCa?: string;
  /** The certificate a launched node serves its direct transport with, over TLS only. */
  readonly tls?: ServerTlsFiles;
  readonly heartbeatIntervalMs?: number;
  readonly extentBytesMax?: number;
  /** The port a launched node serves its metrics and probes on (0 picks a free one); none without it. */
  readonly httpPort?: number;
}

/**
 * Turns the controller's decisions into running (or stopped) storage nodes.
 * `launch` returns once the node has been asked to start (a process spawned,
 * a pod created); the node counts as active when its first heartbeat comes.
 */
export interface Orchestrator {
  readonly kind: OrchestratorKind;
  launch(spec: NodeLaunchSpec): Promise<void>;
  /** Stops a node the controller removed (no error if it is already gone). */
  remove(nodeId: string): Promise<void>;
  close(): Promise<void>;
}

export const OrchestratorKind = {
  /** Storage nodes as local processes (or in the controller's process, for tests). */
  Local: "local",
  /** Storage-node pods created and deleted through the Kubernetes API. */
  Kubernetes: "kubernetes",
  /** Decisions are only published; something else acts on them. */
  EventsOnly: "events-only",
} as const;
export type OrchestratorKind = (typeof OrchestratorKind)[keyof typeof OrchestratorKind];

export type OrchestratorConfig =
  | { readonly kind: "local"; readonly dataDir: string; readonly inline?: boolean; readonly host?: string }
  | {
    readonly kind: "kubernetes";
    readonly namespace?: string;
    /**
     * Pod manifest template per tier (`${NAME}` placeholders, see kubernetes.ts);
     * `deploy/kubernetes/storage-node-<tier>.yaml` by default.
     */
    readonly manifests?: { readonly [T in Tier]?: string };
    readonly image?: string;
    /** NATS URL as seen from inside the cluster (the controller's own by default). */
    readonly natsUrl?: string;
    /** A kubeconfig file; in-cluster or the default kubeconfig otherwise. */
    readonly kubeconfig?: string;
  }
  | { readonly kind: "events-only" };

/** Publishes nothing itself (the controller publishes every decision); for external orchestrators. */
export class EventsOnlyOrchestrator implements Orchestrator {
  readonly kind = OrchestratorKind.EventsOnly;
  launch(): Promise<void> { return Promise.resolve(); }
  remove(): Promise<void> { return Promise.resolve(); }
  close(): Promise<void> { return Promise.resolve(); }
}
